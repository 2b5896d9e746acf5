// Package peergraph is `kubectl stage graph`: who knows whom among an
// app's peers. Build is a pure function of the peers and the views they
// serve (table-tested); Read is the thin layer that lists the pods and
// reads each view through the API server's pod proxy.
package peergraph

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// Peer is a running pod of the app.
type Peer struct {
	Pod, Node, Site string
	// IPs reach it (its host IP and pod IP); Port is the port it advertises
	// (annotation kubectl-stage.io/port, 0 when none).
	IPs  []string
	Port int
	// Endpoint is its peers endpoint as declared ("" when none).
	Endpoint string
}

// Entry is one peer a view lists.
type Entry struct {
	// Name or Addr (ip, ip:port) says who; either may be empty.
	Name, Addr string
	// Live is false for a peer the view lists as dead or suspect.
	Live bool
}

// View is what reading a peer's endpoint gave.
type View struct {
	Entries []Entry
	// Err says why it could not be read.
	Err error
}

// Endpoint is a parsed kubectl-stage.io/peers-endpoint: the pod's port
// (a number or a name) and the path.
type Endpoint struct {
	Port string
	Path string
}

// ParseEndpoint reads "[:]PORT/PATH", such as ":7946/peers".
func ParseEndpoint(value string) (Endpoint, error) {
	port, path, ok := strings.Cut(strings.TrimPrefix(value, ":"), "/")
	if !ok || port == "" {
		return Endpoint{}, fmt.Errorf("annotation %s=%q: write the pod's port and the path, such as \":7946/peers\"", api.AnnotationPeersEndpoint, value)
	}
	if n, err := strconv.Atoi(port); err == nil {
		if n < 1 || n > 65535 {
			return Endpoint{}, fmt.Errorf("annotation %s=%q: port %d is not 1-65535", api.AnnotationPeersEndpoint, value, n)
		}
	} else if errs := validation.IsValidPortName(port); len(errs) > 0 {
		return Endpoint{}, fmt.Errorf("annotation %s=%q: %q is neither a port number nor a port name", api.AnnotationPeersEndpoint, value, port)
	}
	return Endpoint{Port: port, Path: "/" + path}, nil
}

// ParseView reads a peers endpoint's answer. The contract: a JSON array
// of peers, or an object whose "peers" or "members" field is that array.
// A peer is a string (an address "ip[:port]", or a pod name) or an object
// with any of "name", "addr" (or "address") and liveness as "alive"
// (boolean) or "state" ("alive", "up", "connected" or "active" are live;
// any other state is not). A peer with no liveness is live.
func ParseView(body []byte) ([]Entry, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(body, &list); err != nil {
		var object map[string]json.RawMessage
		if json.Unmarshal(body, &object) != nil {
			return nil, errors.New("the answer is not JSON: want an array of peers, or an object with a \"peers\" or \"members\" array")
		}
		raw, ok := object["peers"]
		if !ok {
			raw, ok = object["members"]
		}
		if !ok || json.Unmarshal(raw, &list) != nil {
			return nil, errors.New("the answer has no \"peers\" or \"members\" array")
		}
	}
	entries := make([]Entry, 0, len(list))
	for i, raw := range list {
		e, err := parseEntry(raw)
		if err != nil {
			return nil, fmt.Errorf("peer %d: %w", i, err)
		}
		entries = append(entries, e)
	}
	return entries, nil
}

func parseEntry(raw json.RawMessage) (Entry, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if looksLikeAddress(s) {
			return Entry{Addr: s, Live: true}, nil
		}
		return Entry{Name: s, Live: true}, nil
	}
	var o struct {
		Name    string  `json:"name"`
		Addr    string  `json:"addr"`
		Address string  `json:"address"`
		Alive   *bool   `json:"alive"`
		State   *string `json:"state"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return Entry{}, errors.New("neither a string nor an object")
	}
	e := Entry{Name: o.Name, Addr: cmp.Or(o.Addr, o.Address), Live: true}
	if e.Name == "" && e.Addr == "" {
		return Entry{}, errors.New(`neither "name" nor "addr" is set`)
	}
	switch {
	case o.Alive != nil:
		e.Live = *o.Alive
	case o.State != nil:
		e.Live = slices.Contains([]string{"alive", "up", "connected", "active"}, strings.ToLower(*o.State))
	}
	return e, nil
}

func looksLikeAddress(s string) bool {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	return net.ParseIP(s) != nil
}

// Build is the graph of the peers' views (keyed by pod): each live entry
// that is another peer of the app is a link, any other an unknown address;
// a peer whose view could not be read is kept, marked as not answering.
func Build(namespace, app string, peers []Peer, views map[string]View) *v1alpha1.PeerGraph {
	peers = slices.Clone(peers)
	slices.SortFunc(peers, func(a, b Peer) int { return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.Pod, b.Pod)) })
	g := &v1alpha1.PeerGraph{ObjectMeta: metav1.ObjectMeta{Name: app, Namespace: namespace}, Peers: []v1alpha1.GraphPeer{}, Links: []v1alpha1.GraphLink{}}
	resolve := resolver(peers)
	index := map[string]int{}
	for i, p := range peers {
		index[p.Pod] = i
	}
	for _, p := range peers {
		node := v1alpha1.GraphPeer{Pod: p.Pod, Site: p.Site, Node: p.Node, Endpoint: p.Endpoint}
		view := views[p.Pod]
		if view.Err != nil {
			node.Error = view.Err.Error()
			g.Peers = append(g.Peers, node)
			continue
		}
		node.Answered = true
		linked := map[string]bool{}
		for _, e := range view.Entries {
			if !e.Live {
				continue
			}
			to, ok := resolve(e)
			switch {
			case !ok:
				node.Unknown = append(node.Unknown, cmp.Or(e.Addr, e.Name))
			case to == p.Pod || linked[to]:
			default:
				linked[to] = true
				cross := peers[index[to]].Site != p.Site
				g.Links = append(g.Links, v1alpha1.GraphLink{From: p.Pod, To: to, CrossSite: cross})
				node.Known++
				if cross {
					node.CrossSite++
				}
			}
		}
		slices.Sort(node.Unknown)
		g.Peers = append(g.Peers, node)
	}
	slices.SortFunc(g.Links, func(a, b v1alpha1.GraphLink) int { return cmp.Or(cmp.Compare(a.From, b.From), cmp.Compare(a.To, b.To)) })
	g.Summary = summarize(g)
	return g
}

// resolver maps a view's entry to the pod it names: by pod name, by
// ip:port (the pod's IP and advertised port), or by IP alone where one pod
// has it.
func resolver(peers []Peer) func(Entry) (string, bool) {
	byName := map[string]string{}
	byAddr := map[string]string{}
	byIP := map[string][]string{}
	for _, p := range peers {
		byName[p.Pod] = p.Pod
		for _, ip := range p.IPs {
			if !slices.Contains(byIP[ip], p.Pod) {
				byIP[ip] = append(byIP[ip], p.Pod)
			}
			if p.Port != 0 {
				byAddr[net.JoinHostPort(ip, strconv.Itoa(p.Port))] = p.Pod
			}
		}
	}
	return func(e Entry) (string, bool) {
		if pod, ok := byName[e.Name]; ok {
			return pod, true
		}
		if e.Addr == "" {
			return "", false
		}
		if pod, ok := byAddr[e.Addr]; ok {
			return pod, true
		}
		ip := e.Addr
		if host, _, err := net.SplitHostPort(e.Addr); err == nil {
			ip = host
		}
		if pods := byIP[ip]; len(pods) == 1 {
			return pods[0], true
		}
		return "", false
	}
}

func summarize(g *v1alpha1.PeerGraph) v1alpha1.GraphSummary {
	s := v1alpha1.GraphSummary{Peers: len(g.Peers), Links: len(g.Links)}
	parent := map[string]string{}
	var find func(string) string
	find = func(p string) string {
		if parent[p] == p {
			return p
		}
		parent[p] = find(parent[p])
		return parent[p]
	}
	linked := map[string]bool{}
	crossAt := map[string]bool{}
	siteOf := map[string]string{}
	for _, p := range g.Peers {
		parent[p.Pod] = p.Pod
		siteOf[p.Pod] = p.Site
		if p.Answered {
			s.Answered++
		} else {
			s.NotAnswering = append(s.NotAnswering, p.Pod)
		}
	}
	for _, l := range g.Links {
		parent[find(l.From)] = find(l.To)
		linked[l.From], linked[l.To] = true, true
		if l.CrossSite {
			s.CrossSiteLinks++
			crossAt[siteOf[l.From]], crossAt[siteOf[l.To]] = true, true
		}
	}
	var sites []string
	for _, p := range g.Peers {
		if find(p.Pod) == p.Pod {
			s.Components++
		}
		if !linked[p.Pod] {
			s.Isolated = append(s.Isolated, p.Pod)
		}
		if !slices.Contains(sites, p.Site) {
			sites = append(sites, p.Site)
		}
	}
	if len(sites) > 1 {
		for _, site := range sites {
			if !crossAt[site] {
				s.SitesWithoutCrossSiteLinks = append(s.SitesWithoutCrossSiteLinks, site)
			}
		}
	}
	if s.Links > 0 {
		s.CrossSitePercent = int(math.Round(100 * float64(s.CrossSiteLinks) / float64(s.Links)))
	}
	return s
}
