package net

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

func TestPaths(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	records := []site.NodeRecord{
		{Name: "b-1", Site: "b", OverlayIP: netip.MustParseAddr("10.23.0.3"), WireGuardPublicKey: "UnNkCJit5iuuDx5P4XtxCQ3V5jUruipvQ8ZOe2L4fko=", Endpoint: "198.18.200.2:51821", EnrolledAt: t0.Add(time.Hour)},
		{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), WireGuardPublicKey: "l5pjfUisGnkhTfVZ8p5BVSB4rSLqEFq+GjZUXMD6fFw=", Endpoint: "198.18.200.1:51821", EnrolledAt: t0},
		{Name: "c-1", Site: "c", OverlayIP: netip.MustParseAddr("10.23.0.4"), WireGuardPublicKey: "ukDw0bgKIuOILgzOuFmq0P72rPV97LMJWzI9VUuGlyk=", EnrolledAt: t0},
		{Name: "evil", Site: "x", OverlayIP: netip.MustParseAddr("10.23.0.2"), WireGuardPublicKey: "QGKpw/G+vjxOoJn3mXG+bA0LPMOWwQYPRH9LJoB61D8=", EnrolledAt: t0.Add(2 * time.Hour)},
	}
	addresses := map[netip.Addr]string{}
	for _, r := range records[:3] {
		addresses[r.OverlayIP] = r.Name
	}
	base := site.Config{OverlayCIDR: "10.23.0.0/16", HubEndpoint: "198.18.0.1:51820", HubPublicKey: "kuju5UNO0d0MNfhGR1vIJGkFXJis4rf2wircFnJy7xs="}
	tests := []struct {
		name        string
		vpn         vpn.Backend
		records     []site.NodeRecord
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
			name: "openvpn star", vpn: vpn.OpenVPN, records: records[:2], wantShape: "star",
			want: []string{"a-1.b-1 relayed OpenVPN overlays are a star: every path goes through the hub " + t0.Add(time.Hour).Format(time.RFC3339)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			cfg.VPN = tt.vpn
			list, refused, err := Paths(&cfg, tt.records, addresses)
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
	if _, _, err := Paths(&noKey, records, addresses); err != site.ErrNoHubPublicKey {
		t.Errorf("a configuration without the hub key: %v, want ErrNoHubPublicKey", err)
	}
}
