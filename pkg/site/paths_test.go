package site

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

func TestPaths(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	records := []NodeRecord{
		{Name: "b-1", Site: "b", OverlayIP: netip.MustParseAddr("10.23.0.3"), WireGuardPublicKey: "UnNkCJit5iuuDx5P4XtxCQ3V5jUruipvQ8ZOe2L4fko=", Endpoint: "198.18.200.2:51821", EnrolledAt: t0.Add(time.Hour)},
		{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), WireGuardPublicKey: "l5pjfUisGnkhTfVZ8p5BVSB4rSLqEFq+GjZUXMD6fFw=", Endpoint: "198.18.200.1:51821", EnrolledAt: t0},
		{Name: "c-1", Site: "c", OverlayIP: netip.MustParseAddr("10.23.0.4"), WireGuardPublicKey: "ukDw0bgKIuOILgzOuFmq0P72rPV97LMJWzI9VUuGlyk=", EnrolledAt: t0},
		{Name: "evil", Site: "x", OverlayIP: netip.MustParseAddr("10.23.0.2"), WireGuardPublicKey: "QGKpw/G+vjxOoJn3mXG+bA0LPMOWwQYPRH9LJoB61D8=", EnrolledAt: t0.Add(2 * time.Hour)},
	}
	auto := NodeRecord{Name: "e-1", Site: "e", OverlayIP: netip.MustParseAddr("10.23.0.6"), WireGuardPublicKey: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", Endpoint: mesh.EndpointAuto, EnrolledAt: t0.Add(3 * time.Hour)}
	addresses := map[netip.Addr]string{auto.OverlayIP: auto.Name}
	for _, r := range records[:3] {
		addresses[r.OverlayIP] = r.Name
	}
	base := Config{OverlayCIDR: "10.23.0.0/16", HubEndpoint: "198.18.0.1:51820", HubPublicKey: "kuju5UNO0d0MNfhGR1vIJGkFXJis4rf2wircFnJy7xs="}
	tests := []struct {
		name        string
		vpn         vpn.Backend
		records     []NodeRecord
		observed    map[string]string
		wantShape   string
		want        []string
		wantRefused int
	}{
		{
			name: "wireguard mesh", vpn: vpn.WireGuard, records: records, wantShape: "mesh", wantRefused: 1,
			want: []string{
				"a-1.b-1 direct  " + t0.Add(time.Hour).Format(time.RFC3339),
				"a-1.c-1 relayed c-1 has no endpoint other sites can reach (behind NAT) " + t0.Format(time.RFC3339),
				"b-1.c-1 relayed c-1 has no endpoint other sites can reach (behind NAT) " + t0.Add(time.Hour).Format(time.RFC3339),
			},
		},
		{
			name: "an auto endpoint: direct where the hub observed it", vpn: vpn.WireGuard, wantShape: "mesh",
			records:  []NodeRecord{records[1], auto},
			observed: map[string]string{"e-1": "198.18.200.5:40001"},
			want:     []string{"a-1.e-1 direct  " + t0.Add(3*time.Hour).Format(time.RFC3339)},
		},
		{
			name: "an auto endpoint not observed yet: relayed", vpn: vpn.WireGuard, wantShape: "mesh",
			records: []NodeRecord{records[1], auto},
			want:    []string{"a-1.e-1 relayed e-1's endpoint is the one the hub observes, and the hub has observed none yet " + t0.Add(3*time.Hour).Format(time.RFC3339)},
		},
		{
			name: "openvpn star", vpn: vpn.OpenVPN, records: records[:2], wantShape: "star",
			want: []string{"a-1.b-1 relayed OpenVPN overlays are a star: every path goes through the hub " + t0.Add(time.Hour).Format(time.RFC3339)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.VPN = tt.vpn
			list, refused, err := BuildPaths(&cfg, tt.records, addresses, tt.observed)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range list.Items {
				got = append(got, p.Name+" "+p.Spec.Path+" "+p.Spec.Reason+" "+p.Spec.Since.UTC().Format(time.RFC3339))
			}
			if list.Shape != tt.wantShape || !reflect.DeepEqual(got, tt.want) || len(refused) != tt.wantRefused {
				t.Errorf("shape %s, paths\n%q\nrefused %v; want %s\n%q", list.Shape, got, refused, tt.wantShape, tt.want)
			}
		})
	}
	noKey := base
	noKey.VPN = vpn.WireGuard
	noKey.HubPublicKey = ""
	if _, _, err := BuildPaths(&noKey, records, addresses, nil); err != ErrNoHubPublicKey {
		t.Errorf("a configuration without the hub key: %v, want ErrNoHubPublicKey", err)
	}
}

func TestAddSitePaths(t *testing.T) {
	pair := func(siteA, siteB, kind string) v1alpha1.NetworkPath {
		return v1alpha1.NetworkPath{Spec: v1alpha1.NetworkPathSpec{SiteA: siteA, SiteB: siteB, Path: kind}}
	}
	paths := &v1alpha1.NetworkPathList{Items: []v1alpha1.NetworkPath{
		pair("a", "b", mesh.Direct),
		pair("a", "c", mesh.Relayed),
		pair("a", "c", mesh.Relayed),
		pair("b", "c", mesh.Direct),  // b-1 and c-1 direct,
		pair("c", "b", mesh.Relayed), // c-2 and b-1 relayed: mixed
		pair("b", "b", mesh.Relayed), // within a site: not a site pair
	}}
	sites := &v1alpha1.SiteList{Items: []v1alpha1.Site{{}, {}, {}, {}}}
	for i, name := range []string{"a", "b", "c", "lonely"} {
		sites.Items[i].Name = name
	}
	AddSitePaths(sites, paths)
	want := map[string]map[string]string{
		"a": {"b": mesh.Direct, "c": mesh.Relayed},
		"b": {"a": mesh.Direct, "c": v1alpha1.PathMixed},
		"c": {"a": mesh.Relayed, "b": v1alpha1.PathMixed},
	}
	for _, s := range sites.Items {
		if !reflect.DeepEqual(s.Status.Paths, want[s.Name]) {
			t.Errorf("site %s: paths %v, want %v", s.Name, s.Status.Paths, want[s.Name])
		}
	}
}
