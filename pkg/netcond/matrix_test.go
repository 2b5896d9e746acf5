package netcond

import (
	"reflect"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	got := Summarize("y", "us", 12, ms(10, 1, 9, 2, 8, 3, 7, 4, 6, 5))
	want := PeerFigures{Node: "y", Site: "us", Sent: 12, Lost: 2, P50: 5, P95: 10}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize("y", "us", 3, nil); got != (PeerFigures{Node: "y", Site: "us", Sent: 3, Lost: 3}) {
		t.Errorf("all lost: %+v", got)
	}
}

func TestBuildMatrix(t *testing.T) {
	doc := parse(t, header+"default: {latency: 80ms}\npairs: [{from: europe, to: us, lossPercent: 5}]\n")
	statuses := map[string]*Status{
		"eu-1": {Site: "europe", ConditionsVersion: "7", AppliedBy: "pod kubectl-stage-system/stage-kubectl-stage-net-agent-x7k2p",
			Pairs: []PairStatus{{From: "europe", To: "us", Applied: []string{"loss"}, NotApplied: map[string]string{"latency": NetemMissing}}},
			Peers: []PeerFigures{
				{Node: "us-1", Site: "us", Sent: 10, Lost: 1, P50: 80, P95: 90},
				{Node: "us-2", Site: "us", Sent: 10, Lost: 0, P50: 82, P95: 120},
			}},
		"eu-2":   {Site: "europe", ConditionsVersion: "6", AppliedBy: "process 4242"},
		"us-1":   {Site: "us", ConditionsVersion: "7", Error: "tc: Operation not permitted"},
		"asia-1": {Site: "asia", ConditionsVersion: "7", Peers: []PeerFigures{{Node: "us-1", Site: "us", Sent: 5, Lost: 5}}},
	}
	m := BuildMatrix(doc, "7", nodes[:5], statuses)
	byPair := map[string]SitePair{}
	for _, p := range m.Sites {
		byPair[p.From+">"+p.To] = p
	}
	if len(m.Sites) != 6 {
		t.Errorf("%d site pairs, want 6 (3 sites, both directions)", len(m.Sites))
	}
	eu := byPair["europe>us"]
	wantEU := SitePair{From: "europe", To: "us", Target: doc.Between("europe", "us"), Applied: "no",
		Measured:   &Figures{Sent: 20, Lost: 1, LossPercent: 5, P50: 80, P95: 120},
		NotApplied: []string{"eu-1: latency not applied: " + NetemMissing, `eu-2: still at conditions version "6", not "7"`}}
	if !reflect.DeepEqual(eu, wantEU) {
		t.Errorf("europe -> us:\n%+v\nwant\n%+v", eu, wantEU)
	}
	if p := byPair["us>europe"]; p.Applied != "no" || !reflect.DeepEqual(p.NotApplied, []string{"us-1: tc: Operation not permitted", "us-2: no status published (is its agent running?)"}) || p.Measured != nil {
		t.Errorf("us -> europe: %+v", p)
	}
	if p := byPair["asia>us"]; p.Measured == nil || p.Measured.String() != "unreachable (5 lost)" {
		t.Errorf("asia -> us: %+v, want unreachable", p.Measured)
	}
	var agents []string
	for _, a := range m.Agents {
		agents = append(agents, a.Site+"/"+a.Node+": "+a.AppliedBy)
	}
	if want := []string{"asia/asia-1: ", "europe/eu-1: pod kubectl-stage-system/stage-kubectl-stage-net-agent-x7k2p", "europe/eu-2: process 4242", "us/us-1: ", "us/us-2: "}; !reflect.DeepEqual(agents, want) {
		t.Errorf("agents %q, want %q", agents, want)
	}
	if len(m.Nodes) != 3 || m.Nodes[0] != (NodePair{From: "asia-1", FromSite: "asia", To: "us-1", ToSite: "us", Measured: Figures{Sent: 5, Lost: 5, LossPercent: 100}}) {
		t.Errorf("node pairs: %+v", m.Nodes)
	}
}
