package peergraph

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// bySite groups the graph's peers (already by site) into runs of a site.
func bySite(g *v1alpha1.PeerGraph) [][]v1alpha1.GraphPeer {
	var groups [][]v1alpha1.GraphPeer
	for i, p := range g.Peers {
		if i == 0 || p.Site != g.Peers[i-1].Site {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], p)
	}
	return groups
}

// WriteDOT writes the graph for Graphviz: a cluster per site, a dashed node
// for a peer that did not answer, cross-site links in bold.
func WriteDOT(w io.Writer, g *v1alpha1.PeerGraph) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", strconv.Quote(g.Namespace+"/"+g.Name))
	b.WriteString("  node [shape=box];\n")
	for i, peers := range bySite(g) {
		fmt.Fprintf(&b, "  subgraph cluster_%d {\n    label=%s;\n", i, strconv.Quote(peers[0].Site))
		for _, p := range peers {
			if p.Answered {
				fmt.Fprintf(&b, "    %s;\n", strconv.Quote(p.Pod))
			} else {
				fmt.Fprintf(&b, "    %s [style=dashed, label=%s];\n", strconv.Quote(p.Pod), strconv.Quote(p.Pod+"\n(no answer)"))
			}
		}
		b.WriteString("  }\n")
	}
	for _, l := range g.Links {
		style := ""
		if l.CrossSite {
			style = " [style=bold]"
		}
		fmt.Fprintf(&b, "  %s -> %s%s;\n", strconv.Quote(l.From), strconv.Quote(l.To), style)
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMermaid writes the graph as a Mermaid flowchart: a subgraph per
// site, peers as p0, p1... (pod names are not Mermaid identifiers).
func WriteMermaid(w io.Writer, g *v1alpha1.PeerGraph) error {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	id := map[string]string{}
	for i, p := range g.Peers {
		id[p.Pod] = "p" + strconv.Itoa(i)
	}
	for i, peers := range bySite(g) {
		fmt.Fprintf(&b, "  subgraph s%d[%q]\n", i, peers[0].Site)
		for _, p := range peers {
			label := p.Pod
			if !p.Answered {
				label += " (no answer)"
			}
			fmt.Fprintf(&b, "    %s[%q]\n", id[p.Pod], label)
		}
		b.WriteString("  end\n")
	}
	for _, l := range g.Links {
		arrow := "-->"
		if l.CrossSite {
			arrow = "==>"
		}
		fmt.Fprintf(&b, "  %s %s %s\n", id[l.From], arrow, id[l.To])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
