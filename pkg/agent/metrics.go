package agent

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
)

var (
	rttP50Desc = prometheus.NewDesc("kubectl_stage_net_rtt_p50_seconds",
		"Median round trip from this node's site to another site over the overlay (median of the node pairs' medians, last 30 probes each).", []string{"from_site", "to_site"}, nil)
	rttP95Desc = prometheus.NewDesc("kubectl_stage_net_rtt_p95_seconds",
		"95th percentile round trip from this node's site to another site (the worst node pair's).", []string{"from_site", "to_site"}, nil)
	lossDesc = prometheus.NewDesc("kubectl_stage_net_loss_ratio",
		"Share of the probes from this node to another site's nodes that got no answer (last 30 per node).", []string{"from_site", "to_site"}, nil)
	probesDesc = prometheus.NewDesc("kubectl_stage_net_probes_sent_total",
		"Round-trip probes this node sent.", nil, nil)
)

// Describe implements prometheus.Collector.
func (n *NetConditions) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{rttP50Desc, rttP95Desc, lossDesc, probesDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the figures per pair of sites,
// computed when scraped, so their number is bounded by the sites', never
// the nodes'.
func (n *NetConditions) Collect(ch chan<- prometheus.Metric) {
	if n.Prober == nil {
		return
	}
	n.mu.Lock()
	self := netcond.Node{Name: n.Node, Site: n.status.Site}
	n.mu.Unlock()
	if self.Site == "" {
		return
	}
	figures := n.Prober.Figures()
	nodes := []netcond.Node{self}
	for _, f := range figures {
		nodes = append(nodes, netcond.Node{Name: f.Node, Site: f.Site})
	}
	m := netcond.BuildMatrix(netcond.New(), "", nodes, map[string]*netcond.Status{self.Name: {Site: self.Site, Peers: figures}})
	for _, p := range m.Sites {
		if p.From != self.Site || p.Measured == nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(lossDesc, prometheus.GaugeValue, p.Measured.LossPercent/100, p.From, p.To)
		if p.Measured.Sent > p.Measured.Lost {
			ch <- prometheus.MustNewConstMetric(rttP50Desc, prometheus.GaugeValue, p.Measured.P50/1000, p.From, p.To)
			ch <- prometheus.MustNewConstMetric(rttP95Desc, prometheus.GaugeValue, p.Measured.P95/1000, p.From, p.To)
		}
	}
	ch <- prometheus.MustNewConstMetric(probesDesc, prometheus.CounterValue, float64(n.Prober.Sent()))
}
