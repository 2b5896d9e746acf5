package net

import (
	"bytes"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
)

func TestPrintMatrix(t *testing.T) {
	yes := true
	m := &netcond.Matrix{
		Sites: []netcond.SitePair{
			{From: "asia", To: "europe", Target: netcond.Conditions{Partition: &yes}, Applied: "yes", Measured: &netcond.Figures{Sent: 30, Lost: 30, LossPercent: 100}},
			{From: "europe", To: "us", Target: netcond.Conditions{Latency: "40ms", Bandwidth: "10mbit"}, Applied: "no",
				NotApplied: []string{"eu-1: latency not applied: kernel lacks sch_netem"}, Measured: &netcond.Figures{Sent: 30, Lost: 1, LossPercent: 3.3, P50: 1.84, P95: 2.61}},
			{From: "us", To: "europe", Applied: "-"},
		},
		Nodes: []netcond.NodePair{{From: "eu-1", FromSite: "europe", To: "us-1", ToSite: "us", Measured: netcond.Figures{Sent: 30, Lost: 1, LossPercent: 3.3, P50: 1.84, P95: 2.61}}},
		Agents: []netcond.NodeAgent{{Node: "asia-1", Site: "asia"}, {Node: "eu-1", Site: "europe", AppliedBy: "pod kubectl-stage-system/stage-kubectl-stage-net-agent-x7k2p"},
			{Node: "us-1", Site: "us", AppliedBy: "process 4242"}},
	}
	want := `FROM     TO       RTT P50/P95 LOSS        PROBES   TARGET                 APPLIED
asia     europe   unreachable (30 lost)   30       partition              yes
europe   us       1.8/2.6ms 3.3%          30       latency 40ms, 10mbit   no (eu-1: latency not applied: kernel lacks sch_netem)
us       europe   -                       0        -                      -
`
	wide := want + `
FROM-NODE   FROM-SITE   TO-NODE   TO-SITE   RTT P50/P95 LOSS   PROBES
eu-1        europe      us-1      us        1.8/2.6ms 3.3%     30

NODE     SITE     APPLIED-BY
asia-1   asia     <no status: is its agent running?>
eu-1     europe   pod kubectl-stage-system/stage-kubectl-stage-net-agent-x7k2p
us-1     us       process 4242
`
	for _, tt := range []struct {
		wide bool
		want string
	}{{false, want}, {true, wide}} {
		var out bytes.Buffer
		if err := printMatrix(&out, m, tt.wide); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.want {
			t.Errorf("wide=%v:\n%s\nwant:\n%s", tt.wide, out.String(), tt.want)
		}
	}
}
