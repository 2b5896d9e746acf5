package agent

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
)

func TestMetricsBySitePair(t *testing.T) {
	p := &Prober{Window: 30}
	p.SetPeers(netip.MustParseAddr("10.23.0.2"), []netcond.Node{
		{Name: "eu-1", Site: "europe", OverlayIP: netip.MustParseAddr("10.23.0.2")},
		{Name: "us-1", Site: "us", OverlayIP: netip.MustParseAddr("10.23.0.3")},
		{Name: "us-2", Site: "us", OverlayIP: netip.MustParseAddr("10.23.0.4")},
		{Name: "asia-1", Site: "asia", OverlayIP: netip.MustParseAddr("10.23.0.5")},
	})
	p.results = map[string][]probeResult{
		"us-1":   {{rtt: 80 * time.Millisecond}, {rtt: 100 * time.Millisecond}, {lost: true}, {rtt: 90 * time.Millisecond}},
		"us-2":   {{rtt: 70 * time.Millisecond}, {rtt: 70 * time.Millisecond}, {rtt: 70 * time.Millisecond}, {rtt: 70 * time.Millisecond}},
		"asia-1": {{lost: true}, {lost: true}},
	}
	p.sent = 10
	n := &NetConditions{Node: "eu-1", Prober: p}
	n.status.Site = "europe"
	// Three nodes at two other sites: one series per site pair.
	want := `
# HELP kubectl_stage_net_loss_ratio Share of the probes from this node to another site's nodes that got no answer (last 30 per node).
# TYPE kubectl_stage_net_loss_ratio gauge
kubectl_stage_net_loss_ratio{from_site="europe",to_site="asia"} 1
kubectl_stage_net_loss_ratio{from_site="europe",to_site="us"} 0.125
# HELP kubectl_stage_net_probes_sent_total Round-trip probes this node sent.
# TYPE kubectl_stage_net_probes_sent_total counter
kubectl_stage_net_probes_sent_total 10
# HELP kubectl_stage_net_rtt_p50_seconds Median round trip from this node's site to another site over the overlay (median of the node pairs' medians, last 30 probes each).
# TYPE kubectl_stage_net_rtt_p50_seconds gauge
kubectl_stage_net_rtt_p50_seconds{from_site="europe",to_site="us"} 0.07
# HELP kubectl_stage_net_rtt_p95_seconds 95th percentile round trip from this node's site to another site (the worst node pair's).
# TYPE kubectl_stage_net_rtt_p95_seconds gauge
kubectl_stage_net_rtt_p95_seconds{from_site="europe",to_site="us"} 0.1
`
	if err := testutil.CollectAndCompare(n, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
