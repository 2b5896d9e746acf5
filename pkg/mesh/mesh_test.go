package mesh

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

const (
	keyHub = "kuju5UNO0d0MNfhGR1vIJGkFXJis4rf2wircFnJy7xs="
	keyA   = "l5pjfUisGnkhTfVZ8p5BVSB4rSLqEFq+GjZUXMD6fFw="
	keyB   = "UnNkCJit5iuuDx5P4XtxCQ3V5jUruipvQ8ZOe2L4fko="
	keyC   = "ukDw0bgKIuOILgzOuFmq0P72rPV97LMJWzI9VUuGlyk="
	keyD   = "QGKpw/G+vjxOoJn3mXG+bA0LPMOWwQYPRH9LJoB61D8="
	keyE   = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
)

var (
	t0  = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	hub = Hub{PublicKey: keyHub, Endpoint: "198.18.0.1:51820", Prefix: netip.MustParsePrefix("10.23.0.0/16"), OverlayIP: netip.MustParseAddr("10.23.0.1")}
	// a and b declare endpoints; c is behind NAT; d declares one but is relay-only.
	a = Node{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), PublicKey: keyA, Endpoint: "198.18.200.1:51821", EnrolledAt: t0}
	b = Node{Name: "b-1", Site: "b", OverlayIP: netip.MustParseAddr("10.23.0.3"), PublicKey: keyB, Endpoint: "198.18.200.2:51821", EnrolledAt: t0.Add(time.Minute)}
	c = Node{Name: "c-1", Site: "c", OverlayIP: netip.MustParseAddr("10.23.0.4"), PublicKey: keyC, EnrolledAt: t0.Add(2 * time.Minute)}
	d = Node{Name: "d-1", Site: "d", OverlayIP: netip.MustParseAddr("10.23.0.5"), PublicKey: keyD, Endpoint: "d.example.org:51821", RelayOnly: true, EnrolledAt: t0.Add(3 * time.Minute)}
	// e is reached where the hub sees its packets come from.
	e = Node{Name: "e-1", Site: "e", OverlayIP: netip.MustParseAddr("10.23.0.6"), PublicKey: keyE, Endpoint: EndpointAuto, EnrolledAt: t0.Add(4 * time.Minute)}
)

// cluster is the nodes with the address table join would have written:
// a, b, c, d and e hold their addresses; the others none.
func cluster(nodes []Node) Cluster {
	addresses := map[netip.Addr]string{}
	for _, n := range []Node{a, b, c, d, e} {
		addresses[n.OverlayIP] = n.Name
	}
	return Cluster{Hub: hub, Nodes: nodes, Addresses: addresses}
}

func hubPeer() Peer {
	return Peer{Name: HubName, PublicKey: keyHub, Endpoint: hub.Endpoint, AllowedIPs: []netip.Prefix{hub.Prefix}, PersistentKeepalive: KeepaliveSeconds}
}

func host(n Node, endpoint string) Peer {
	return Peer{Name: n.Name, PublicKey: n.PublicKey, Endpoint: endpoint, AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.OverlayIP, 32)}}
}

func TestPathBetween(t *testing.T) {
	tests := []struct {
		name       string
		x, y       Node
		wantKind   string
		wantReason string
	}{
		{"both reachable", a, b, Direct, ""},
		{"order does not matter", b, a, Direct, ""},
		{"one behind NAT", a, c, Relayed, "c-1 has no endpoint other sites can reach (behind NAT)"},
		{"NAT on the first side", c, b, Relayed, "c-1 has no endpoint other sites can reach (behind NAT)"},
		{"relay-only with an endpoint", a, d, Relayed, "d-1 is relay-only"},
		{"both behind NAT", c, Node{Name: "z-1"}, Relayed, "c-1 has no endpoint other sites can reach (behind NAT)"},
		{"auto endpoint observed", a, Node{Name: "e-1", Endpoint: "198.18.200.5:40001", AutoEndpoint: true}, Direct, ""},
		{"auto endpoint not observed yet", a, Node{Name: "e-1", AutoEndpoint: true}, Relayed, "e-1's endpoint is the one the hub observes, and the hub has observed none yet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := PathBetween(tt.x, tt.y)
			if p.Kind != tt.wantKind || p.Reason != tt.wantReason {
				t.Errorf("got %s %q, want %s %q", p.Kind, p.Reason, tt.wantKind, tt.wantReason)
			}
			if want := later(tt.x.EnrolledAt, tt.y.EnrolledAt); !p.Since.Equal(want) {
				t.Errorf("since %v, want the later enrollment %v", p.Since, want)
			}
		})
	}
}

func TestNodePeers(t *testing.T) {
	tests := []struct {
		name        string
		self        string
		nodes       []Node
		observed    map[string]string
		want        []Peer
		wantRefused []string
		wantErr     string
	}{
		{
			name: "alone: only the hub", self: "a-1", nodes: []Node{a},
			want: []Peer{hubPeer()},
		},
		{
			name: "a reaches b directly; c (NAT) and d (relay-only) through the hub", self: "a-1", nodes: []Node{d, c, b, a},
			want: []Peer{hubPeer(), host(b, b.Endpoint)},
		},
		{
			name: "a NATed node has only the hub", self: "c-1", nodes: []Node{a, b, c, d},
			want: []Peer{hubPeer()},
		},
		{
			name: "a relay-only node has only the hub", self: "d-1", nodes: []Node{a, b, c, d},
			want: []Peer{hubPeer()},
		},
		{
			name: "a node claiming b's overlay address is refused; b stays", self: "a-1",
			nodes:       []Node{a, b, {Name: "evil", Site: "x", OverlayIP: b.OverlayIP, PublicKey: keyC, Endpoint: "198.18.200.9:51821", EnrolledAt: t0.Add(time.Hour)}},
			want:        []Peer{hubPeer(), host(b, b.Endpoint)},
			wantRefused: []string{"evil: claims overlay address 10.23.0.3, which b-1 holds"},
		},
		{
			name: "a node claiming b's key is refused; b stays", self: "a-1",
			nodes:       []Node{a, b, {Name: "evil", Site: "x", OverlayIP: netip.MustParseAddr("10.23.0.9"), PublicKey: keyB, Endpoint: "198.18.200.9:51821", EnrolledAt: t0.Add(time.Hour)}},
			want:        []Peer{hubPeer(), host(b, b.Endpoint)},
			wantRefused: []string{"evil: claims the WireGuard public key of b-1"},
		},
		{
			name: "a node claiming the hub's address or key is refused", self: "a-1",
			nodes: []Node{a,
				{Name: "fake-hub", Site: "x", OverlayIP: hub.OverlayIP, PublicKey: keyD, Endpoint: "198.18.200.9:51821"},
				{Name: "hub-key", Site: "x", OverlayIP: netip.MustParseAddr("10.23.0.8"), PublicKey: keyHub, Endpoint: "198.18.200.8:51821"}},
			want:        []Peer{hubPeer()},
			wantRefused: []string{"fake-hub: claims overlay address 10.23.0.1, which hub holds", "hub-key: claims the WireGuard public key of hub"},
		},
		{
			name: "invalid records are refused", self: "a-1",
			nodes: []Node{a,
				{Name: "outside", OverlayIP: netip.MustParseAddr("192.168.1.1"), PublicKey: keyC},
				{Name: "badkey", OverlayIP: netip.MustParseAddr("10.23.0.7"), PublicKey: "not-a-key"},
				{Name: "badendpoint", OverlayIP: netip.MustParseAddr("10.23.0.6"), PublicKey: keyD, Endpoint: "198.18.200.6"}},
			want: []Peer{hubPeer()},
			wantRefused: []string{
				`badendpoint: endpoint: "198.18.200.6" is not HOST:PORT: address 198.18.200.6: missing port in address`,
				"badkey: public key: not a WireGuard key (44 characters of base64 for 32 bytes)",
				"outside: overlay address 192.168.1.1 is not in the overlay 10.23.0.0/16",
			},
		},
		{
			name: "a reaches an auto node where the hub observed it", self: "a-1", nodes: []Node{a, e},
			observed: map[string]string{"e-1": "198.18.200.5:40001", "a-1": "198.18.1.2:51821"},
			want:     []Peer{hubPeer(), host(e, "198.18.200.5:40001")},
		},
		{
			name: "a declared endpoint wins over the observed one", self: "e-1", nodes: []Node{a, e},
			observed: map[string]string{"e-1": "198.18.200.5:40001", "a-1": "198.18.1.2:51821"},
			want:     []Peer{hubPeer(), host(a, a.Endpoint)},
		},
		{
			name: "an auto node the hub has not observed is relayed", self: "a-1", nodes: []Node{a, e},
			want: []Peer{hubPeer()},
		},
		{
			name: "an observation that is not IP:PORT is ignored", self: "a-1", nodes: []Node{a, e},
			observed: map[string]string{"e-1": "e.example.org:40001"},
			want:     []Peer{hubPeer()},
		},
		{
			name: "this node not enrolled", self: "z-1", nodes: []Node{a, b},
			wantErr: `node "z-1" is not enrolled: enroll it with ` + "`kubectl stage join SITE --node z-1`",
		},
		{
			name: "this node's record refused", self: "evil",
			nodes:   []Node{a, {Name: "evil", OverlayIP: a.OverlayIP, PublicKey: keyC, EnrolledAt: t0.Add(time.Hour)}},
			wantErr: "this node's record is refused: claims overlay address 10.23.0.2, which a-1 holds",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cluster(tt.nodes)
			c.Observed = tt.observed
			plan, err := NodePeers(tt.self, c)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(plan.Peers, tt.want) {
				t.Errorf("peers\n got %+v\nwant %+v", plan.Peers, tt.want)
			}
			var refused []string
			for _, r := range plan.Refused {
				refused = append(refused, r.String())
			}
			if !reflect.DeepEqual(refused, tt.wantRefused) {
				t.Errorf("refused\n got %q\nwant %q", refused, tt.wantRefused)
			}
		})
	}
}

// TestAcceptFollowsTheAddressTable: once b left (its address released), a
// record still claiming b's address is refused, as is one whose address
// join never allocated.
func TestAcceptFollowsTheAddressTable(t *testing.T) {
	afterLeave := cluster([]Node{a, {Name: "evil", Site: "x", OverlayIP: b.OverlayIP, PublicKey: keyC, EnrolledAt: t0.Add(time.Hour)},
		{Name: "ghost", Site: "x", OverlayIP: netip.MustParseAddr("10.23.0.9"), PublicKey: keyD}})
	delete(afterLeave.Addresses, b.OverlayIP)
	accepted, refused := Accept(afterLeave)
	if len(accepted) != 1 || accepted[0].Name != "a-1" {
		t.Errorf("accepted %v, want a-1 only", accepted)
	}
	want := []Refusal{
		{Node: "evil", Reason: "claims overlay address 10.23.0.3, which the address table gives to no node (join did not enroll it)"},
		{Node: "ghost", Reason: "claims overlay address 10.23.0.9, which the address table gives to no node (join did not enroll it)"},
	}
	if !reflect.DeepEqual(refused, want) {
		t.Errorf("refused %q, want %q", refused, want)
	}
}

func TestHubPeers(t *testing.T) {
	evil := Node{Name: "evil", OverlayIP: c.OverlayIP, PublicKey: keyD, EnrolledAt: t0.Add(time.Hour)}
	plan := HubPeers(cluster([]Node{d, c, b, a, evil}))
	want := []Peer{host(a, ""), host(b, ""), host(c, ""), host(d, "")}
	if !reflect.DeepEqual(plan.Peers, want) {
		t.Errorf("peers\n got %+v\nwant %+v", plan.Peers, want)
	}
	if len(plan.Refused) != 1 || plan.Refused[0].Node != "evil" {
		t.Errorf("refused %v, want evil only", plan.Refused)
	}
}

func TestPaths(t *testing.T) {
	paths, _ := Paths(cluster([]Node{c, a, b}))
	var got []string
	for _, p := range paths {
		got = append(got, p.A.Name+"-"+p.B.Name+":"+p.Kind)
	}
	want := []string{"a-1-b-1:direct", "a-1-c-1:relayed", "b-1-c-1:relayed"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

// TestObservations: the hub's live peers become endpoints by node name;
// keys of no accepted node and peers without an endpoint are left out.
func TestObservations(t *testing.T) {
	live := []LivePeer{
		{PublicKey: keyA, Endpoint: "198.18.1.2:51821"},
		{PublicKey: keyE, Endpoint: "198.18.200.5:40001"},
		{PublicKey: keyC},
		{PublicKey: keyD, Endpoint: "198.18.4.2:51821"},
	}
	got := Observations(cluster([]Node{a, c, e}), live)
	want := map[string]string{"a-1": "198.18.1.2:51821", "e-1": "198.18.200.5:40001"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
