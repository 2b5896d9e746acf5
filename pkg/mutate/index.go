package mutate

import (
	"slices"
	"sync"
)

// Index is a View kept current by events (a pod or node added, changed or
// deleted) instead of a scan per admission: the nodes' sites, and per
// namespace and app the ready peers a seed can be taken from, grouped by
// site and kept in indexed lists, so that choosing seeds costs O(seeds +
// sites) however many peers there are. An event costs O(1) (O(sites) when a
// site appears or empties, O(pods on the node) when a node changes site).
//
// It is safe for concurrent use: Peers holds a read lock while its reader
// runs, the event methods a write lock.
type Index struct {
	mu sync.RWMutex
	// siteOf is the site of each node that has one.
	siteOf map[string]string
	// nodesAt counts the nodes at each site; sites are its keys, sorted,
	// replaced (never edited) when they change.
	nodesAt map[string]int
	sites   []string
	pods    map[podKey]*indexedPod
	// onNode are the pods on each node, re-filed when its site changes.
	onNode map[string]map[podKey]struct{}
	apps   map[appKey]*ReadyPeers
}

type podKey struct{ namespace, name string }

type appKey struct{ namespace, app string }

type indexedPod struct {
	namespace, app string
	peer           *Peer // never edited: an update replaces it
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{
		siteOf: map[string]string{}, nodesAt: map[string]int{},
		pods: map[podKey]*indexedPod{}, onNode: map[string]map[podKey]struct{}{}, apps: map[appKey]*ReadyPeers{},
	}
}

// Sites implements View.
func (x *Index) Sites() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.sites
}

// Peers implements View; the peers do not change until read returns.
func (x *Index) Peers(namespace, app string, read func(*ReadyPeers)) error {
	x.mu.RLock()
	defer x.mu.RUnlock()
	read(x.apps[appKey{namespace, app}])
	return nil
}

// SetNode records the site of a node ("": it has none).
func (x *Index) SetNode(name, site string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old, known := x.siteOf[name]
	if old == site && (known || site == "") {
		return
	}
	if known {
		x.countNode(old, -1)
		delete(x.siteOf, name)
	}
	if site != "" {
		x.siteOf[name] = site
		x.countNode(site, 1)
	}
	for key := range x.onNode[name] {
		p := x.pods[key]
		x.unfile(p)
		moved := *p.peer
		moved.Site = site
		p.peer = &moved
		x.file(p)
	}
}

// DeleteNode forgets a node: its pods are at no site.
func (x *Index) DeleteNode(name string) { x.SetNode(name, "") }

func (x *Index) countNode(site string, delta int) {
	x.nodesAt[site] += delta
	if n := x.nodesAt[site]; n == 0 || (n == 1 && delta > 0) {
		if n == 0 {
			delete(x.nodesAt, site)
		}
		sites := make([]string, 0, len(x.nodesAt))
		for s := range x.nodesAt {
			sites = append(sites, s)
		}
		slices.Sort(sites)
		x.sites = sites
	}
}

// SetPod records a pod of app in namespace, or replaces what was known of
// it. Its site is its node's (p.Site is ignored).
func (x *Index) SetPod(namespace, app string, p Peer) {
	x.mu.Lock()
	defer x.mu.Unlock()
	key := podKey{namespace, p.Name}
	x.remove(key)
	p.Site = x.siteOf[p.Node]
	entry := &indexedPod{namespace: namespace, app: app, peer: &p}
	x.pods[key] = entry
	if x.onNode[p.Node] == nil {
		x.onNode[p.Node] = map[podKey]struct{}{}
	}
	x.onNode[p.Node][key] = struct{}{}
	x.file(entry)
}

// DeletePod forgets a pod.
func (x *Index) DeletePod(namespace, name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.remove(podKey{namespace, name})
}

func (x *Index) remove(key podKey) {
	p, ok := x.pods[key]
	if !ok {
		return
	}
	x.unfile(p)
	delete(x.pods, key)
	if on := x.onNode[p.peer.Node]; on != nil {
		delete(on, key)
		if len(on) == 0 {
			delete(x.onNode, p.peer.Node)
		}
	}
}

// listed reports whether a seed can be taken from the peer: ready, with an
// address that reaches it at some port.
func listed(p *Peer) bool {
	return p.Ready && p.HostIP != "" && (p.HostNetwork || len(p.HostPorts) > 0)
}

func (x *Index) file(p *indexedPod) {
	if !listed(p.peer) {
		return
	}
	key := appKey{p.namespace, p.app}
	app := x.apps[key]
	if app == nil {
		app = &ReadyPeers{at: map[string]*sitePeers{}, advertising: map[int]int{}}
		x.apps[key] = app
	}
	app.add(p.peer)
}

func (x *Index) unfile(p *indexedPod) {
	if !listed(p.peer) {
		return
	}
	key := appKey{p.namespace, p.app}
	if app := x.apps[key]; app != nil && app.remove(p.peer) {
		delete(x.apps, key)
	}
}

// ReadyPeers are an app's peers a seed can be taken from (ready, with an
// address), grouped by site. A nil *ReadyPeers has none.
type ReadyPeers struct {
	sites []string // with peers, sorted; replaced, never edited
	at    map[string]*sitePeers
	size  int
	// advertising counts the peers advertising each port.
	advertising map[int]int
}

// sitePeers are a site's ready peers: those on the host network (reachable
// at any port) and, apart, those reachable through each hostPort.
type sitePeers struct {
	hostNetwork peerList
	hostPort    map[int32]*peerList
	size        int
}

// Sites are the sites with ready peers, sorted by name.
func (r *ReadyPeers) Sites() []string {
	if r == nil {
		return nil
	}
	return r.sites
}

// Len is the number of peers.
func (r *ReadyPeers) Len() int {
	if r == nil {
		return 0
	}
	return r.size
}

// AdvertisedPort is the port most peers advertise (the lowest of equals),
// 0 when none advertises one. It costs O(ports advertised).
func (r *ReadyPeers) AdvertisedPort() int {
	if r == nil {
		return 0
	}
	best, most := 0, 0
	for port, n := range r.advertising {
		if port != 0 && (n > most || (n == most && port < best)) {
			best, most = port, n
		}
	}
	return best
}

// Reachable are the ready peers at site that answer at their node's IP on
// port (0: the IP alone, which only the host network's do), in a fixed order.
func (r *ReadyPeers) Reachable(site string, port int) Candidates {
	if r == nil || r.at[site] == nil {
		return Candidates{}
	}
	s := r.at[site]
	c := Candidates{s.hostNetwork.peers, nil}
	if l := s.hostPort[int32(port)]; port != 0 && l != nil {
		c[1] = l.peers
	}
	return c
}

func (r *ReadyPeers) add(p *Peer) {
	s := r.at[p.Site]
	if s == nil {
		s = &sitePeers{hostPort: map[int32]*peerList{}}
		r.at[p.Site] = s
		r.sites = append(slices.Clone(r.sites), p.Site)
		slices.Sort(r.sites)
	}
	r.size++
	r.advertising[p.Port]++
	s.size++
	if p.HostNetwork {
		s.hostNetwork.add(p)
		return
	}
	for _, port := range uniquePorts(p.HostPorts) {
		l := s.hostPort[port]
		if l == nil {
			l = &peerList{}
			s.hostPort[port] = l
		}
		l.add(p)
	}
}

// remove takes p out and reports whether no peer is left.
func (r *ReadyPeers) remove(p *Peer) bool {
	s := r.at[p.Site]
	if s == nil {
		return false
	}
	r.size--
	if r.advertising[p.Port]--; r.advertising[p.Port] == 0 {
		delete(r.advertising, p.Port)
	}
	s.size--
	if p.HostNetwork {
		s.hostNetwork.remove(p.Name)
	} else {
		for _, port := range uniquePorts(p.HostPorts) {
			if l := s.hostPort[port]; l != nil && l.remove(p.Name) {
				delete(s.hostPort, port)
			}
		}
	}
	if s.size == 0 {
		delete(r.at, p.Site)
		r.sites = slices.DeleteFunc(slices.Clone(r.sites), func(site string) bool { return site == p.Site })
	}
	return len(r.at) == 0
}

func uniquePorts(ports []int32) []int32 {
	if len(ports) < 2 {
		return ports
	}
	u := slices.Clone(ports)
	slices.Sort(u)
	return slices.Compact(u)
}

// peerList is a set of peers in an indexed list: add, remove and the i-th
// peer in O(1). A removal moves the last peer into the hole.
type peerList struct {
	peers []*Peer
	pos   map[string]int
}

func (l *peerList) add(p *Peer) {
	if l.pos == nil {
		l.pos = map[string]int{}
	}
	l.pos[p.Name] = len(l.peers)
	l.peers = append(l.peers, p)
}

// remove takes the named peer out and reports whether the list is empty.
func (l *peerList) remove(name string) bool {
	i, ok := l.pos[name]
	if !ok {
		return len(l.peers) == 0
	}
	last := len(l.peers) - 1
	l.peers[i] = l.peers[last]
	l.pos[l.peers[i].Name] = i
	l.peers[last] = nil
	l.peers = l.peers[:last]
	delete(l.pos, name)
	return len(l.peers) == 0
}

// Candidates are the peers a seed may be taken from at one site: the
// host-network peers, then those with the hostPort.
type Candidates [2][]*Peer

// Len is the number of candidates.
func (c Candidates) Len() int { return len(c[0]) + len(c[1]) }

// At is the i-th candidate, 0 <= i < Len().
func (c Candidates) At(i int) *Peer {
	if i < len(c[0]) {
		return c[0][i]
	}
	return c[1][i-len(c[0])]
}
