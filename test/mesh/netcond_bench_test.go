package mesh

import (
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/agent"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

// BenchmarkNetApplyToRules is the time from `kubectl stage net partition`
// (or `heal`, alternately) starting to every site's agent having the rules
// in place and saying so on its Node, with three sites; ms-command/op is
// the command's part, ms-to-rules/op the rest (the agents, polled every
// 100ms). It also
// reports the probe traffic one node sends (its probes and its answers to
// the others', UDP port 51830 both ways), counted by nftables on its
// overlay interface after the agents' own rules (a partitioned peer's
// probes are dropped before they count) over the whole run.
func BenchmarkNetApplyToRules(b *testing.B) {
	netns.RequireRoot(b)
	s := setUp(b)
	a, bn, c := s.nodes["a-1"], s.nodes["b-1"], s.nodes["c-1"]
	all := []*node{a, bn, c}
	s.startWithAgents(all, nil)
	s.countProbes(a)
	start := time.Now()
	b.ResetTimer()
	partitioned := false
	var command, propagation time.Duration
	for b.Loop() {
		t0 := time.Now()
		if partitioned {
			s.stage("net", "heal")
		} else {
			s.stage("net", "partition", "site-a", "--from", "site-b")
		}
		partitioned = !partitioned
		t1 := time.Now()
		s.waitConditions("every agent to apply the change", s.conditionsVersion(), all)
		command, propagation = command+t1.Sub(t0), propagation+time.Since(t1)
	}
	b.StopTimer()
	b.ReportMetric(float64(command.Milliseconds())/float64(b.N), "ms-command/op")
	b.ReportMetric(float64(propagation.Milliseconds())/float64(b.N), "ms-to-rules/op")
	packets, bytes := s.probesSent(a)
	seconds := time.Since(start).Seconds()
	b.ReportMetric(float64(packets)/seconds, "probe-packets/s-per-node")
	b.ReportMetric(float64(bytes)/seconds, "probe-B/s-per-node")
}

// countProbes counts the probe packets n sends on its overlay interface.
func (s *stage) countProbes(n *node) {
	rules := "add table inet stgprobes; add chain inet stgprobes out { type filter hook output priority 10; }; " +
		"add rule inet stgprobes out oifname \"" + n.iface + "\" udp dport " + strconv.Itoa(agent.ProbePort) + " counter"
	if out, err := s.tp.Run(n.ns, "nft", rules); err != nil {
		s.t.Fatalf("nft: %v\n%s", err, out)
	}
	s.t.Cleanup(func() { _, _ = s.tp.Run(n.ns, "nft", "delete", "table", "inet", "stgprobes") })
}

var probeCounter = regexp.MustCompile(`counter packets (\d+) bytes (\d+)`)

func (s *stage) probesSent(n *node) (packets, bytes int64) {
	out, err := s.tp.Run(n.ns, "nft", "list", "table", "inet", "stgprobes")
	m := probeCounter.FindStringSubmatch(out)
	if err != nil || m == nil {
		s.t.Fatalf("nft list table inet stgprobes: %v\n%s", err, out)
	}
	packets, _ = strconv.ParseInt(m[1], 10, 64)
	bytes, _ = strconv.ParseInt(m[2], 10, 64)
	return packets, bytes
}
