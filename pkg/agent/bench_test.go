package agent

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
)

// BenchmarkAgentCycle is the agent's work per change of the cluster and per
// publication with n simulated peers at n/10 sites: the rules for this node,
// the measured figures of full windows, and the status it writes. It
// reports the prober's retained memory (B-prober) and the size of the
// status annotation (B-status).
func BenchmarkAgentCycle(b *testing.B) {
	for _, peers := range []int{50, 500} {
		b.Run(fmt.Sprintf("peers=%d", peers), func(b *testing.B) {
			var nodes []netcond.Node
			for i := 0; i <= peers; i++ {
				nodes = append(nodes, netcond.Node{Name: fmt.Sprintf("n-%d", i), Site: fmt.Sprintf("site-%d", i/10),
					OverlayIP: netip.AddrFrom4([4]byte{10, 23, byte(2 + i/250), byte(1 + i%250)})})
			}
			loss := 2.0
			doc := netcond.New()
			doc.Default = netcond.Conditions{Latency: "80ms", Bandwidth: "50mbit"}
			doc.Pairs = []netcond.Pair{{Sites: []string{"site-0", "site-1"}, Conditions: netcond.Conditions{LossPercent: &loss}}}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			p := &Prober{Window: 30}
			p.SetPeers(nodes[0].OverlayIP, nodes)
			p.mu.Lock()
			p.results = map[string][]probeResult{}
			for _, n := range nodes[1:] {
				for i := 0; i < p.Window; i++ {
					p.record(n.Name, probeResult{rtt: time.Duration(i) * time.Millisecond})
				}
			}
			p.mu.Unlock()
			runtime.GC()
			runtime.ReadMemStats(&after)

			in := netcond.Input{Doc: doc, Self: nodes[0].Name, Nodes: nodes, Hub: netip.MustParseAddr("10.23.0.1"), Device: "wg0"}
			b.ReportAllocs()
			b.ResetTimer()
			var status []byte
			for b.Loop() {
				plan, err := netcond.Rules(in)
				if err != nil {
					b.Fatal(err)
				}
				if status, err = json.Marshal(netcond.Status{Site: "site-0", Pairs: plan.Pairs, Peers: p.Figures()}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc), "B-prober")
			b.ReportMetric(float64(len(status)), "B-status")
		})
	}
}
