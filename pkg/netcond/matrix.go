package netcond

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Figures are measured round trips over a number of probes.
type Figures struct {
	Sent        int     `json:"sent"`
	Lost        int     `json:"lost"`
	LossPercent float64 `json:"lossPercent"`
	P50         float64 `json:"p50ms"`
	P95         float64 `json:"p95ms"`
}

// SitePair is one direction between two sites: the conditions asked for,
// what the sending site's nodes applied, and what they measured.
type SitePair struct {
	From   string     `json:"from"`
	To     string     `json:"to"`
	Target Conditions `json:"target"`
	// Measured sums the probes of every node pair; P50 is the median of the
	// node pairs' medians, P95 the worst node pair's.
	Measured *Figures `json:"measured,omitempty"`
	// Applied is "yes" when every node of From applies every target
	// condition, "-" when there is nothing to apply, else "no".
	Applied string `json:"applied"`
	// NotApplied says, per node of From, what it does not apply and why.
	NotApplied []string `json:"notApplied,omitempty"`
}

// NodePair is what one node measured to another.
type NodePair struct {
	From     string  `json:"from"`
	FromSite string  `json:"fromSite"`
	To       string  `json:"to"`
	ToSite   string  `json:"toSite"`
	Measured Figures `json:"measured"`
}

// NodeAgent is which agent applies the conditions on a node, as its
// status says ("" when it published none).
type NodeAgent struct {
	Node      string `json:"node"`
	Site      string `json:"site"`
	AppliedBy string `json:"appliedBy,omitempty"`
}

// Matrix is every ordered pair of distinct sites, and of nodes at
// different sites that measured each other, and each node's agent.
type Matrix struct {
	ConditionsVersion string      `json:"conditionsVersion,omitempty"`
	Sites             []SitePair  `json:"sites"`
	Nodes             []NodePair  `json:"nodes,omitempty"`
	Agents            []NodeAgent `json:"agents,omitempty"`
}

// BuildMatrix combines the stored document (at version) with the statuses
// the agents published, by node name.
func BuildMatrix(doc *Document, version string, nodes []Node, statuses map[string]*Status) Matrix {
	m := Matrix{ConditionsVersion: version, Sites: []SitePair{}}
	bySite := map[string][]Node{}
	var sites []string
	for _, n := range nodes {
		if _, ok := bySite[n.Site]; !ok {
			sites = append(sites, n.Site)
		}
		bySite[n.Site] = append(bySite[n.Site], n)
	}
	slices.Sort(sites)
	siteOf := map[string]string{}
	for _, n := range nodes {
		siteOf[n.Name] = n.Site
	}
	for _, site := range sites {
		for _, n := range bySite[site] {
			agent := NodeAgent{Node: n.Name, Site: site}
			if st := statuses[n.Name]; st != nil {
				agent.AppliedBy = st.AppliedBy
			}
			m.Agents = append(m.Agents, agent)
		}
	}
	for _, from := range sites {
		for _, to := range sites {
			if from == to {
				continue
			}
			p := SitePair{From: from, To: to, Target: doc.Between(from, to), Applied: "-"}
			var sum Figures
			var p50s []float64
			for _, n := range bySite[from] {
				st := statuses[n.Name]
				if !p.Target.IsEmpty() {
					p.NotApplied = append(p.NotApplied, notApplied(n.Name, to, version, st)...)
				}
				if st == nil {
					continue
				}
				for _, f := range st.Peers {
					if siteOf[f.Node] != to {
						continue
					}
					sum.Sent += f.Sent
					sum.Lost += f.Lost
					if f.Sent > f.Lost {
						p50s = append(p50s, f.P50)
						sum.P95 = math.Max(sum.P95, f.P95)
					}
					m.Nodes = append(m.Nodes, NodePair{From: n.Name, FromSite: from, To: f.Node, ToSite: to, Measured: figures(f.Sent, f.Lost, f.P50, f.P95)})
				}
			}
			if !p.Target.IsEmpty() {
				p.Applied = "yes"
				if len(p.NotApplied) > 0 {
					p.Applied = "no"
				}
			}
			if sum.Sent > 0 {
				f := figures(sum.Sent, sum.Lost, median(p50s), sum.P95)
				p.Measured = &f
			}
			m.Sites = append(m.Sites, p)
		}
	}
	return m
}

// notApplied is why node does not (yet) apply its conditions towards site to.
func notApplied(node, to, version string, st *Status) []string {
	switch {
	case st == nil:
		return []string{node + ": no status published (is its agent running?)"}
	case st.Error != "":
		return []string{node + ": " + st.Error}
	case st.ConditionsVersion != version:
		return []string{fmt.Sprintf("%s: still at conditions version %q, not %q", node, st.ConditionsVersion, version)}
	}
	var out []string
	for _, p := range st.Pairs {
		if p.To != to {
			continue
		}
		keys := make([]string, 0, len(p.NotApplied))
		for k := range p.NotApplied {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out = append(out, node+": "+k+" not applied: "+p.NotApplied[k])
		}
	}
	return out
}

func figures(sent, lost int, p50, p95 float64) Figures {
	f := Figures{Sent: sent, Lost: lost, P50: p50, P95: p95}
	if sent > 0 {
		f.LossPercent = math.Round(float64(lost)/float64(sent)*1000) / 10
	}
	return f
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2]
}

// String is a cell of the human matrix: "p50/p95 loss".
func (f *Figures) String() string {
	if f == nil {
		return "-"
	}
	if f.Sent == f.Lost {
		return fmt.Sprintf("unreachable (%d lost)", f.Lost)
	}
	return strings.TrimSpace(fmt.Sprintf("%.1f/%.1fms %.1f%%", f.P50, f.P95, f.LossPercent))
}
