package netcond

import (
	"math"
	"slices"
	"time"
)

// Status is what a node's agent publishes (as JSON, in the annotation
// api.AnnotationNetStatus of its Node): the conditions it applies per remote
// site, those it could not apply and why, and what it measured.
type Status struct {
	Site string `json:"site"`
	// AppliedBy is the agent that applies the rules on the node: its pod
	// (NAMESPACE/NAME) when the chart's DaemonSet runs it, or the join
	// bundle's process.
	AppliedBy string `json:"appliedBy,omitempty"`
	// ConditionsVersion is the resourceVersion of the conditions ConfigMap
	// the rules were made from ("" when none is stored).
	ConditionsVersion string `json:"conditionsVersion,omitempty"`
	// Error is why the rules are not in place, when they are not.
	Error string       `json:"error,omitempty"`
	Pairs []PairStatus `json:"pairs,omitempty"`
	// Peers are the round trips measured to the other nodes.
	Peers   []PeerFigures `json:"peers,omitempty"`
	Updated time.Time     `json:"updated"`
}

// PeerFigures are the round trips measured from one node to another over
// the overlay, over the last Sent probes.
type PeerFigures struct {
	Node string `json:"node"`
	Site string `json:"site"`
	Sent int    `json:"sent"`
	Lost int    `json:"lost"`
	// RTT percentiles of the probes answered, in milliseconds.
	P50 float64 `json:"p50ms"`
	P95 float64 `json:"p95ms"`
}

// Summarize is one peer's figures from the probes sent and the round trips
// of those answered.
func Summarize(node, site string, sent int, rtts []time.Duration) PeerFigures {
	f := PeerFigures{Node: node, Site: site, Sent: sent, Lost: sent - len(rtts)}
	if len(rtts) > 0 {
		f.P50, f.P95 = percentile(rtts, 50), percentile(rtts, 95)
	}
	return f
}

// percentile is the nearest-rank percentile, in milliseconds rounded to
// 0.01ms.
func percentile(values []time.Duration, p int) float64 {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	rank := (p*len(sorted) + 99) / 100
	if rank < 1 {
		rank = 1
	}
	return math.Round(float64(sorted[rank-1])/float64(time.Millisecond)*100) / 100
}
