// Package mutate is the stage webhook's pod mutation: a pure function of the
// pod and a read-only view of the cluster (sites, peers), so that it is fast
// (the view is an index kept current by informer events), deterministic and
// easy to test.
package mutate

// Peer is a pod of the same app as seen in the cluster.
type Peer struct {
	Name string
	// Node is the node it runs on ("" before scheduling).
	Node string
	// Site is the site of that node ("" before scheduling).
	Site string
	// HostIP is its node's overlay IP.
	HostIP string
	// Ready is true when the pod is Running and Ready.
	Ready bool
	// HostNetwork and HostPorts (the hostPorts its containers declare) tell
	// whether its node's IP reaches it at all.
	HostNetwork bool
	HostPorts   []int32
	// Port is the port it advertises (its annotation kubectl-stage.io/port),
	// 0 when it has none.
	Port int
}

// View is what the mutation may know about the cluster.
type View interface {
	// Sites are the known sites, sorted by name.
	Sites() []string
	// Peers calls read with the ready peers of app in namespace (nil when
	// there are none), which do not change until read returns; read must
	// not keep them. An error says they could not be read.
	Peers(namespace, app string, read func(*ReadyPeers)) error
}

// StaticView is a View over fixed data, for tests and benchmarks. Each
// peer's Site is taken as given.
type StaticView struct {
	SiteNames  []string
	PeersByApp map[string][]Peer // key: namespace + "/" + app
	// Err, when set, is what Peers returns.
	Err error
}

// Sites implements View.
func (v StaticView) Sites() []string { return v.SiteNames }

// Peers implements View through an Index built for the call.
func (v StaticView) Peers(namespace, app string, read func(*ReadyPeers)) error {
	if v.Err != nil {
		return v.Err
	}
	x := NewIndex()
	for _, p := range v.PeersByApp[namespace+"/"+app] {
		p.Node = "node-of-" + p.Name
		x.SetNode(p.Node, p.Site)
		x.SetPod(namespace, app, p)
	}
	return x.Peers(namespace, app, read)
}
