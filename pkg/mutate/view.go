// Package mutate is the stage webhook's pod mutation: a pure function of the
// pod and a read-only view of the cluster (sites, peers), so that it is fast
// (the view is served from informer caches), deterministic and easy to test.
package mutate

import "slices"

// Peer is a pod of the same app as seen in the cluster.
type Peer struct {
	Name string
	// Site is the site of the node it runs on ("" before scheduling).
	Site string
	// HostIP is its node's overlay IP.
	HostIP string
	// Ready is true when the pod is Running and Ready.
	Ready bool
	// HostNetwork and HostPorts (the hostPorts its containers declare) tell
	// whether its node's IP reaches it at all.
	HostNetwork bool
	HostPorts   []int32
}

// reachableAt reports whether the peer answers at its node's IP on port
// (0: the IP alone). Only a pod on the host network, or one given that
// hostPort, does; the node's IP reaches no other pod.
func (p Peer) reachableAt(port int) bool {
	return p.HostNetwork || (port != 0 && slices.Contains(p.HostPorts, int32(port)))
}

// View is what the mutation may know about the cluster.
type View interface {
	// Sites are the known sites, sorted by name.
	Sites() []string
	// Peers are the pods of app in namespace, sorted by name.
	Peers(namespace, app string) []Peer
}

// StaticView is a View over fixed data, for tests and benchmarks.
type StaticView struct {
	SiteNames  []string
	PeersByApp map[string][]Peer // key: namespace + "/" + app
}

// Sites implements View.
func (v StaticView) Sites() []string { return v.SiteNames }

// Peers implements View.
func (v StaticView) Peers(namespace, app string) []Peer { return v.PeersByApp[namespace+"/"+app] }
