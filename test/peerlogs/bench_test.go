package peerlogs_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const benchPeers = 100

// startPeers runs benchPeers peers on nodes at three sites, each serving
// its own log file through kwok.
func startPeers(b *testing.B) (*harness.ControlPlane, []logFile) {
	dir := b.TempDir()
	files := make([]logFile, benchPeers)
	var docs []string
	for i := range files {
		files[i] = logFile{filepath.Join(dir, fmt.Sprintf("gossip-%03d.log", i))}
		docs = append(docs, kwokLogs(fmt.Sprintf("gossip-%03d", i), files[i].path))
	}
	opts := harness.All()
	opts.KwokStages = docs
	cp := harness.StartForTest(b, opts)
	ctx := context.Background()
	sites := []string{"tokyo", "paris", "lima"}
	for _, site := range sites {
		if _, err := cp.AddNode(ctx, harness.Node{Name: "n-" + site, Site: site, InternalIP: "127.0.0.1"}); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	for i := range files {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gossip-%03d", i), Namespace: ns, Labels: map[string]string{api.LabelApp: "gossip"}},
			Spec:       corev1.PodSpec{NodeName: "n-" + sites[i%len(sites)], Containers: []corev1.Container{{Name: "gossip", Image: "gossip"}}},
		}
		if _, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	waitRunning(b, cp, benchPeers, metav1.ListOptions{LabelSelector: api.LabelApp + "=gossip"})
	return cp, files
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n atomic.Int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n.Add(int64(bytes.Count(p, []byte("\n"))))
	return len(p), nil
}

func heapMB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// BenchmarkLogs100Peers: `logs gossip` over 100 peers of 1,000 lines each,
// 10 streams at once.
func BenchmarkLogs100Peers(b *testing.B) {
	cp, files := startPeers(b)
	const perPeer = 1000
	texts := make([]string, perPeer)
	for i := range texts {
		texts[i] = "gossip round " + strconv.Itoa(i) + " with a payload of some forty bytes"
	}
	start := time.Now().Add(-time.Hour)
	for i, f := range files {
		f.append(b, start.Add(time.Duration(i)*time.Microsecond), texts...)
	}
	b.ResetTimer()
	for b.Loop() {
		var out lineCounter
		root := cmd.NewCmdStage(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &bytes.Buffer{}})
		root.SetArgs([]string{"--kubeconfig", cp.Kubeconfig, "logs", "gossip", "-n", ns, "--max-log-requests", "10"})
		if err := root.Execute(); err != nil {
			b.Fatal(err)
		}
		if got := out.n.Load(); got != benchPeers*perPeer {
			b.Fatalf("%d lines, want %d", got, benchPeers*perPeer)
		}
	}
	b.ReportMetric(float64(benchPeers*perPeer*b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkFollow100Peers: `logs gossip -f` over 100 peers; each round
// appends 100 lines to every peer's log and waits until all 10,000 are
// printed.
func BenchmarkFollow100Peers(b *testing.B) {
	cp, files := startPeers(b)
	var out lineCounter
	ctx, cancel := context.WithCancel(context.Background())
	root := cmd.NewCmdStage(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &bytes.Buffer{}})
	root.SetArgs([]string{"--kubeconfig", cp.Kubeconfig, "logs", "gossip", "-n", ns, "-f", "--max-log-requests", strconv.Itoa(benchPeers)})
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("logs -f: %v", err)
		}
	}()
	const perRound = 100
	texts := make([]string, perRound)
	for i := range texts {
		texts[i] = "gossip round " + strconv.Itoa(i) + " with a payload of some forty bytes"
	}
	// Every stream is open before the clock starts: a first line each.
	for _, f := range files {
		f.append(b, time.Now(), "up")
	}
	want := int64(benchPeers)
	waitLines(b, &out, want)
	before := heapMB()
	b.ResetTimer()
	for b.Loop() {
		now := time.Now()
		for _, f := range files {
			f.append(b, now, texts...)
		}
		want += benchPeers * perRound
		waitLines(b, &out, want)
	}
	b.StopTimer()
	b.ReportMetric(float64(benchPeers*perRound*b.N)/b.Elapsed().Seconds(), "lines/s")
	b.ReportMetric(heapMB(), "heap-MB")
	b.ReportMetric(before, "heap-MB-at-start")
}

func waitLines(b *testing.B, out *lineCounter, want int64) {
	deadline := time.Now().Add(2 * time.Minute)
	for out.n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("%d lines printed after 2m, want %d", out.n.Load(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
