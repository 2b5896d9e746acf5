package peergraph

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

func TestParseEndpoint(t *testing.T) {
	tests := []struct {
		value   string
		want    Endpoint
		wantErr string
	}{
		{":7946/peers", Endpoint{Port: "7946", Path: "/peers"}, ""},
		{"7946/api/v1/peers", Endpoint{Port: "7946", Path: "/api/v1/peers"}, ""},
		{":gossip/peers", Endpoint{Port: "gossip", Path: "/peers"}, ""},
		{":7946", Endpoint{}, `annotation kubectl-stage.io/peers-endpoint=":7946": write the pod's port and the path, such as ":7946/peers"`},
		{"/peers", Endpoint{}, `annotation kubectl-stage.io/peers-endpoint="/peers": write the pod's port and the path, such as ":7946/peers"`},
		{":70000/peers", Endpoint{}, `annotation kubectl-stage.io/peers-endpoint=":70000/peers": port 70000 is not 1-65535`},
		{":Gossip_Port/peers", Endpoint{}, `annotation kubectl-stage.io/peers-endpoint=":Gossip_Port/peers": "Gossip_Port" is neither a port number nor a port name`},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, err := ParseEndpoint(tt.value)
			if errText(err) != tt.wantErr || got != tt.want {
				t.Errorf("= %+v, %v; want %+v, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestParseView(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    []Entry
		wantErr string
	}{
		{"addresses and names", `["10.23.0.2:7946", "10.23.0.3", "gossip-2"]`,
			[]Entry{{Addr: "10.23.0.2:7946", Live: true}, {Addr: "10.23.0.3", Live: true}, {Name: "gossip-2", Live: true}}, ""},
		{"the gossip example's members", `{"self":"gossip-0","site":"tokyo","members":[{"name":"gossip-0","addr":"10.23.0.2:7946","alive":true},{"name":"gossip-1","addr":"10.23.0.3:7946","alive":false}]}`,
			[]Entry{{Name: "gossip-0", Addr: "10.23.0.2:7946", Live: true}, {Name: "gossip-1", Addr: "10.23.0.3:7946", Live: false}}, ""},
		{"peers with a state", `{"peers":[{"address":"[fd00::2]:30303","state":"Connected"},{"name":"b","state":"dialing"}]}`,
			[]Entry{{Addr: "[fd00::2]:30303", Live: true}, {Name: "b", Live: false}}, ""},
		{"empty", `[]`, []Entry{}, ""},
		{"not JSON", `<html>`, nil, `the answer is not JSON: want an array of peers, or an object with a "peers" or "members" array`},
		{"no list", `{"nodes":[]}`, nil, `the answer has no "peers" or "members" array`},
		{"a number", `[1]`, nil, "peer 0: neither a string nor an object"},
		{"nobody", `[{"alive":true}]`, nil, `peer 0: neither "name" nor "addr" is set`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseView([]byte(tt.body))
			if errText(err) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("= %+v, %v\nwant %+v, %q", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// peersAt are one peer per site named PREFIX-i, at 10.23.0.(i+2):7946.
func peersAt(sites ...string) []Peer {
	var peers []Peer
	for i, site := range sites {
		peers = append(peers, Peer{Pod: "g-" + string(rune('0'+i)), Node: site + "-1", Site: site, IPs: []string{"10.23.0." + string(rune('2'+i))}, Port: 7946, Endpoint: ":7946/peers"})
	}
	return peers
}

func live(addrs ...string) View {
	v := View{}
	for _, a := range addrs {
		v.Entries = append(v.Entries, Entry{Addr: a, Live: true})
	}
	return v
}

func TestBuild(t *testing.T) {
	// g-0 tokyo 10.23.0.2, g-1 osaka 10.23.0.3, g-2 osaka 10.23.0.4, g-3 frankfurt 10.23.0.5
	peers := peersAt("tokyo", "osaka", "osaka", "frankfurt")
	tests := []struct {
		name    string
		views   map[string]View
		links   string // "from>to*" (* across sites)
		summary v1alpha1.GraphSummary
		check   func(t *testing.T, g *v1alpha1.PeerGraph)
	}{
		{"everyone knows everyone", map[string]View{
			"g-0": live("10.23.0.3:7946", "10.23.0.4:7946", "10.23.0.5:7946"),
			"g-1": live("10.23.0.2:7946", "10.23.0.4:7946", "10.23.0.5:7946"),
			"g-2": live("10.23.0.2:7946", "10.23.0.3:7946", "10.23.0.5:7946"),
			"g-3": live("10.23.0.2:7946", "10.23.0.3:7946", "10.23.0.4:7946"),
		}, "g-0>g-1* g-0>g-2* g-0>g-3* g-1>g-0* g-1>g-2 g-1>g-3* g-2>g-0* g-2>g-1 g-2>g-3* g-3>g-0* g-3>g-1* g-3>g-2*",
			v1alpha1.GraphSummary{Peers: 4, Answered: 4, Components: 1, Links: 12, CrossSiteLinks: 10, CrossSitePercent: 83}, nil},
		{"a partition: osaka alone, frankfurt silent", map[string]View{
			"g-0": live("10.23.0.5:7946"),
			"g-1": live("10.23.0.4:7946"),
			"g-2": live("10.23.0.3:7946"),
			"g-3": {Err: errors.New("GET 7946/peers through the API server: connection refused")},
		}, "g-0>g-3* g-1>g-2 g-2>g-1",
			v1alpha1.GraphSummary{Peers: 4, Answered: 3, Components: 2, NotAnswering: []string{"g-3"}, Links: 3, CrossSiteLinks: 1, CrossSitePercent: 33,
				SitesWithoutCrossSiteLinks: []string{"osaka"}},
			func(t *testing.T, g *v1alpha1.PeerGraph) {
				if p := g.Peers[0]; p.Pod != "g-3" || p.Answered || p.Error != "GET 7946/peers through the API server: connection refused" {
					t.Errorf("the silent peer: %+v", p)
				}
			}},
		{"self, duplicates, names, dead and unknown entries", map[string]View{
			"g-0": {Entries: []Entry{
				{Addr: "10.23.0.2:7946", Live: true},                   // itself
				{Name: "g-1", Live: true},                              // by name
				{Addr: "10.23.0.3:7946", Live: true},                   // g-1 again
				{Addr: "10.23.0.4", Live: true},                        // by IP alone
				{Addr: "10.23.0.5:7946", Live: false},                  // dead: no link
				{Addr: "10.99.0.1:7946", Live: true},                   // no peer
				{Name: "old-peer", Addr: "10.23.0.9:7946", Live: true}, // no peer either
			}},
			"g-1": live(), "g-2": live(), "g-3": live(),
		}, "g-0>g-1* g-0>g-2*",
			v1alpha1.GraphSummary{Peers: 4, Answered: 4, Components: 2, Isolated: []string{"g-3"}, Links: 2, CrossSiteLinks: 2, CrossSitePercent: 100,
				SitesWithoutCrossSiteLinks: []string{"frankfurt"}},
			func(t *testing.T, g *v1alpha1.PeerGraph) {
				p := g.Peers[3]
				if p.Pod != "g-0" || p.Known != 2 || p.CrossSite != 2 || strings.Join(p.Unknown, ",") != "10.23.0.9:7946,10.99.0.1:7946" {
					t.Errorf("g-0: %+v", p)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := Build("p2p", "gossip", peers, tt.views)
			var links []string
			for _, l := range g.Links {
				s := l.From + ">" + l.To
				if l.CrossSite {
					s += "*"
				}
				links = append(links, s)
			}
			if got := strings.Join(links, " "); got != tt.links {
				t.Errorf("links %s\nwant  %s", got, tt.links)
			}
			if !reflect.DeepEqual(g.Summary, tt.summary) {
				t.Errorf("summary %+v\nwant    %+v", g.Summary, tt.summary)
			}
			var order []string
			for _, p := range g.Peers {
				order = append(order, p.Site+"/"+p.Pod)
			}
			if got := strings.Join(order, " "); got != "frankfurt/g-3 osaka/g-1 osaka/g-2 tokyo/g-0" {
				t.Errorf("peers in order %s", got)
			}
			if tt.check != nil {
				tt.check(t, g)
			}
		})
	}
}

func TestRender(t *testing.T) {
	peers := peersAt("tokyo", "osaka")
	g := Build("p2p", "gossip", peers, map[string]View{"g-0": live("10.23.0.3:7946"), "g-1": {Err: errors.New("timeout")}})
	var dot, mermaid strings.Builder
	if err := WriteDOT(&dot, g); err != nil {
		t.Fatal(err)
	}
	wantDOT := `digraph "p2p/gossip" {
  node [shape=box];
  subgraph cluster_0 {
    label="osaka";
    "g-1" [style=dashed, label="g-1\n(no answer)"];
  }
  subgraph cluster_1 {
    label="tokyo";
    "g-0";
  }
  "g-0" -> "g-1" [style=bold];
}
`
	if dot.String() != wantDOT {
		t.Errorf("DOT:\n%s\nwant:\n%s", dot.String(), wantDOT)
	}
	if err := WriteMermaid(&mermaid, g); err != nil {
		t.Fatal(err)
	}
	wantMermaid := `flowchart LR
  subgraph s0["osaka"]
    p0["g-1 (no answer)"]
  end
  subgraph s1["tokyo"]
    p1["g-0"]
  end
  p1 ==> p0
`
	if mermaid.String() != wantMermaid {
		t.Errorf("Mermaid:\n%s\nwant:\n%s", mermaid.String(), wantMermaid)
	}
}
