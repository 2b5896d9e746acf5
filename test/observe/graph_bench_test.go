package observe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	stagecmd "github.com/kubectl-stage/kubectl-stage/pkg/cmd"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
)

// graphPeers is how many peers BenchmarkGraph300Peers reads, and
// graphKnown how many others each of them knows.
const (
	graphPeers = 300
	graphKnown = 8
)

// BenchmarkGraph300Peers: `kubectl stage graph` over 300 peers spread over
// three sites, each serving a view of 8 others through the API server's
// pod proxy. It reports the time of the whole command, the API calls one
// graph makes, and, as the baseline in the same run, the same reading one
// view at a time.
//
//	go test ./test/observe/ -run '^$' -bench Graph300 -benchtime 5x
func BenchmarkGraph300Peers(b *testing.B) {
	ctx := context.Background()
	p := newPeers(b)
	address := func(i int) string { return fmt.Sprintf("%s:%d", p.ips[i%len(sites)], 20000+i) }
	for i := range graphPeers {
		var view []string
		for k := 1; k <= graphKnown; k++ {
			view = append(view, address((i+k*37)%graphPeers))
		}
		body, err := json.Marshal(view)
		if err != nil {
			b.Fatal(err)
		}
		port := serve(b, p.ips[i%len(sites)], 20000+i, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
		p.addPod(b, fmt.Sprintf("gossip-%03d", i), i%len(sites), port)
	}
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := p.cp.Client.CoreV1().Pods("p2p").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		running := 0
		for _, pod := range pods.Items {
			if pod.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == graphPeers, nil
	}); err != nil {
		b.Fatalf("the %d pods never all ran: %v", graphPeers, err)
	}

	// API calls counted on the client's transport.
	var calls atomic.Int64
	config := rest.CopyConfig(p.cp.Config)
	config.QPS, config.Burst = stagecmd.ClientQPS, stagecmd.ClientBurst // as the command's own client
	config.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			calls.Add(1)
			return rt.RoundTrip(r)
		})
	})
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		b.Fatal(err)
	}
	read := func(parallel int) {
		calls.Store(0)
		g, err := peergraph.Reader{Client: client, Timeout: 5 * time.Second, Parallel: parallel}.Read(ctx, "p2p", "gossip")
		if err != nil {
			b.Fatal(err)
		}
		if len(g.Peers) != graphPeers || len(g.Links) != graphPeers*graphKnown || g.Summary.Components != 1 {
			b.Fatalf("the graph has %d peers, %d links, %d components: want %d, %d, 1", len(g.Peers), len(g.Links), g.Summary.Components, graphPeers, graphPeers*graphKnown)
		}
	}
	start := time.Now()
	read(1)
	oneAtATime := time.Since(start)
	read(16)
	apiCalls := calls.Load()

	b.ResetTimer()
	for range b.N {
		if _, err := p.stage("graph", "gossip", "-n", "p2p", "-o", "json"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/graph")
	b.ReportMetric(float64(oneAtATime.Milliseconds()), "ms-one-view-at-a-time")
	b.ReportMetric(float64(apiCalls), "api-calls/graph")
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
