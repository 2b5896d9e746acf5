// Package mesh decides the WireGuard overlay's shape: for every pair of
// enrolled nodes whether packets go straight between them or through the
// hub, and from that the exact peer set each node's (and the hub's)
// interface must have. It is a pure function of the enrolled nodes and the
// hub; pkg/mesh's Applier and the agent do the I/O.
//
// Routing rests on WireGuard's cryptokey routing being a longest-prefix
// match: every node keeps the hub as the peer of the whole overlay prefix,
// and a node it reaches directly is a peer of that node's /32 only, so
// whatever is not direct goes through the hub, and removing a direct peer
// falls back to the relay at once.
package mesh

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Node is an enrolled node as the mesh sees it: nothing secret.
type Node struct {
	Name string
	Site string
	// OverlayIP is the address enrollment allocated.
	OverlayIP netip.Addr
	// PublicKey is the WireGuard key enrollment issued.
	PublicKey string
	// Endpoint is the underlay HOST:PORT other nodes can send to, declared
	// at join; EndpointAuto for the one the hub observes (Accept puts the
	// observation in its place); empty when the node is not reachable from
	// other sites (behind a NAT without a forwarded port).
	Endpoint string
	// AutoEndpoint, set by Accept, says Endpoint is the hub's observation
	// (empty while there is none).
	AutoEndpoint bool
	// RelayOnly keeps every path of the node through the hub, even when it
	// declared an endpoint (a site whose firewall lets only the hub in).
	RelayOnly bool
	// EnrolledAt decides which of two nodes claiming the same address or
	// key keeps it: the one enrolled first.
	EnrolledAt time.Time
}

// Hub is the overlay's hub: the control point and the relay.
type Hub struct {
	PublicKey string
	// Endpoint is HOST:PORT where nodes reach the hub.
	Endpoint string
	// Prefix is the overlay; OverlayIP the hub's address in it.
	Prefix    netip.Prefix
	OverlayIP netip.Addr
}

// Cluster is what the mesh is decided from: the hub, the node records, and
// the overlay address table, which join and leave keep and which is the
// authority on which node holds which address.
type Cluster struct {
	Hub   Hub
	Nodes []Node
	// Addresses maps each allocated overlay address to its node.
	Addresses map[netip.Addr]string
	// Observed is the underlay endpoint the hub's WireGuard last saw each
	// node's packets come from, by node name (the hub agent publishes it).
	Observed map[string]string
}

// EndpointAuto, as a node's declared endpoint, means "what the hub
// observes": a node that does not know its own public address (a cloud
// machine behind 1:1 NAT, an address that changes) is reached where its
// packets to the hub come from, and followed when that changes.
const EndpointAuto = "auto"

// Peer is one [Peer] section of a WireGuard interface.
type Peer struct {
	// Name says whose key this is, for logs (node name or "hub").
	Name      string
	PublicKey string
	// Endpoint is empty when the peer's address is learnt from its own
	// packets (WireGuard roaming): the hub's view of NATed nodes.
	Endpoint   string
	AllowedIPs []netip.Prefix
	// PersistentKeepalive in seconds (0: off) keeps a NAT mapping open.
	PersistentKeepalive int
}

// HubName is Peer.Name of the hub.
const HubName = "hub"

// KeepaliveSeconds keeps the NAT mapping towards the hub open, as the
// bundle's configuration does.
const KeepaliveSeconds = 25

// Path kinds between two nodes.
const (
	Direct  = "direct"
	Relayed = "relayed"
)

// Path is how packets travel between two nodes, and why.
type Path struct {
	A, B Node
	// Kind is Direct or Relayed (through the hub).
	Kind string
	// Reason says why a path is relayed.
	Reason string
	// Since is when the pair got this path: the later enrollment of the two
	// (records do not change after join).
	Since time.Time
}

// PathBetween decides one pair's path: direct when each side has an
// endpoint the other can send to and neither is relay-only. A node without
// an endpoint is relayed even towards nodes that have one: its NAT would
// let a peer's packets in only after it sent first, and a mesh that waits
// on that loses packets whenever the mapping expires; the hub, which it
// keeps a mapping open to, always works.
func PathBetween(a, b Node) Path {
	p := Path{A: a, B: b, Kind: Direct, Since: later(a.EnrolledAt, b.EnrolledAt)}
	for _, n := range []Node{a, b} {
		switch {
		case n.RelayOnly:
			p.Kind, p.Reason = Relayed, n.Name+" is relay-only"
		case n.Endpoint == "" && n.AutoEndpoint:
			p.Kind, p.Reason = Relayed, n.Name+"'s endpoint is the one the hub observes, and the hub has observed none yet"
		case n.Endpoint == "":
			p.Kind, p.Reason = Relayed, n.Name+" has no endpoint other sites can reach (behind NAT)"
		default:
			continue
		}
		return p
	}
	return p
}

// Refusal is a node record the mesh ignores, and why.
type Refusal struct {
	Node   string
	Reason string
}

func (r Refusal) String() string { return r.Node + ": " + r.Reason }

// Accept returns the nodes that may be peers, sorted by name, and refuses
// the others: a record with an invalid key, address or endpoint, an address
// outside the overlay or the hub's, an address the address table does not
// give to that node (another node's, or one join never allocated), and a
// key another node (enrolled earlier) or the hub holds. A node's interface
// therefore only ever accepts keys that enrollment issued to one node, for
// that node's own address.
func Accept(c Cluster) ([]Node, []Refusal) {
	hub := c.Hub
	sorted := slices.Clone(c.Nodes)
	slices.SortFunc(sorted, func(a, b Node) int {
		return cmp.Or(a.EnrolledAt.Compare(b.EnrolledAt), strings.Compare(a.Name, b.Name))
	})
	var accepted []Node
	var refused []Refusal
	addressOwner := map[netip.Addr]string{hub.OverlayIP: HubName}
	keyOwner := map[string]string{hub.PublicKey: HubName}
	for _, n := range sorted {
		if reason := invalid(n, hub); reason != "" {
			refused = append(refused, Refusal{Node: n.Name, Reason: reason})
			continue
		}
		if owner, taken := addressOwner[n.OverlayIP]; taken {
			refused = append(refused, Refusal{Node: n.Name, Reason: fmt.Sprintf("claims overlay address %s, which %s holds", n.OverlayIP, owner)})
			continue
		}
		if owner, taken := keyOwner[n.PublicKey]; taken {
			refused = append(refused, Refusal{Node: n.Name, Reason: "claims the WireGuard public key of " + owner})
			continue
		}
		if owner := c.Addresses[n.OverlayIP]; owner != n.Name {
			reason := fmt.Sprintf("claims overlay address %s, which %s holds", n.OverlayIP, owner)
			if owner == "" {
				reason = fmt.Sprintf("claims overlay address %s, which the address table gives to no node (join did not enroll it)", n.OverlayIP)
			}
			refused = append(refused, Refusal{Node: n.Name, Reason: reason})
			continue
		}
		addressOwner[n.OverlayIP], keyOwner[n.PublicKey] = n.Name, n.Name
		if n.Endpoint == EndpointAuto {
			n.AutoEndpoint, n.Endpoint = true, observedEndpoint(c.Observed[n.Name])
		}
		accepted = append(accepted, n)
	}
	slices.SortFunc(accepted, func(a, b Node) int { return strings.Compare(a.Name, b.Name) })
	slices.SortFunc(refused, func(a, b Refusal) int { return strings.Compare(a.Node, b.Node) })
	return accepted, refused
}

func invalid(n Node, hub Hub) string {
	if err := vpn.ValidateWireGuardKey(n.PublicKey); err != nil {
		return "public key: " + err.Error()
	}
	if !n.OverlayIP.Is4() || !hub.Prefix.Contains(n.OverlayIP) {
		return fmt.Sprintf("overlay address %s is not in the overlay %s", n.OverlayIP, hub.Prefix)
	}
	if n.Endpoint != "" && n.Endpoint != EndpointAuto {
		if _, _, err := vpn.SplitEndpoint(n.Endpoint); err != nil {
			return "endpoint: " + err.Error()
		}
	}
	return ""
}

// observedEndpoint is the hub's observation if it is an IP:PORT, "" if not:
// WireGuard reports the address packets came from, never a name.
func observedEndpoint(observed string) string {
	if a, err := netip.ParseAddrPort(observed); err != nil || !a.IsValid() || a.Port() == 0 {
		return ""
	}
	return observed
}

// Observations are the accepted nodes' endpoints as the hub's interface
// reports them (public key to endpoint), by node name; a node the hub has
// not heard from is absent.
func Observations(c Cluster, live []LivePeer) map[string]string {
	accepted, _ := Accept(c)
	byKey := map[string]string{}
	for _, n := range accepted {
		byKey[n.PublicKey] = n.Name
	}
	observed := map[string]string{}
	for _, p := range live {
		if name, ok := byKey[p.PublicKey]; ok && observedEndpoint(p.Endpoint) != "" {
			observed[name] = p.Endpoint
		}
	}
	return observed
}

// Plan is the peer set one interface must have, and the records ignored.
type Plan struct {
	Peers   []Peer
	Refused []Refusal
}

// NodePeers is the peer set of node self's interface: the hub for the whole
// overlay, and each node with a direct path for its /32. It fails when self
// is not an accepted node: an agent must not configure an interface for a
// node the cluster did not enroll (or enrolled under another address).
func NodePeers(self string, c Cluster) (Plan, error) {
	hub := c.Hub
	accepted, refused := Accept(c)
	i := slices.IndexFunc(accepted, func(n Node) bool { return n.Name == self })
	if i < 0 {
		for _, r := range refused {
			if r.Node == self {
				return Plan{}, fmt.Errorf("this node's record is refused: %s; repair it, or re-enroll this node with `kubectl stage leave %s` and `kubectl stage join`", r.Reason, self)
			}
		}
		return Plan{}, fmt.Errorf("node %q is not enrolled: enroll it with `kubectl stage join SITE --node %s`, or give the agent this node's name", self, self)
	}
	me := accepted[i]
	plan := Plan{Refused: refused, Peers: []Peer{{
		Name: HubName, PublicKey: hub.PublicKey, Endpoint: hub.Endpoint,
		AllowedIPs: []netip.Prefix{hub.Prefix}, PersistentKeepalive: KeepaliveSeconds,
	}}}
	for _, n := range accepted {
		if n.Name == self || PathBetween(me, n).Kind != Direct {
			continue
		}
		plan.Peers = append(plan.Peers, Peer{
			Name: n.Name, PublicKey: n.PublicKey, Endpoint: n.Endpoint,
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.OverlayIP, 32)},
		})
	}
	return plan, nil
}

// HubPeers is the peer set of the hub's interface: every accepted node for
// its /32, endpoints learnt from the nodes' own packets (a NATed node's
// endpoint is its NAT's mapping, which only the node can open).
func HubPeers(c Cluster) Plan {
	accepted, refused := Accept(c)
	plan := Plan{Refused: refused}
	for _, n := range accepted {
		plan.Peers = append(plan.Peers, Peer{Name: n.Name, PublicKey: n.PublicKey, AllowedIPs: []netip.Prefix{netip.PrefixFrom(n.OverlayIP, 32)}})
	}
	return plan
}

// Paths is every pair of accepted nodes' path, in name order.
func Paths(c Cluster) ([]Path, []Refusal) {
	accepted, refused := Accept(c)
	var paths []Path
	for i, a := range accepted {
		for _, b := range accepted[i+1:] {
			paths = append(paths, PathBetween(a, b))
		}
	}
	return paths, refused
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
