package rollout_test

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// BenchmarkRolloutOverhead rolls a DaemonSet with one pod per site, one
// site per wave, and reports the rollout's own time: the whole rollout
// minus the time each wave spent waiting for its pods to be replaced and
// Ready (which kwok and the controllers decide, not the rollout).
//
//	go test ./test/rollout -run '^$' -bench RolloutOverhead -benchtime 3x
func BenchmarkRolloutOverhead(b *testing.B) {
	for _, n := range []int{3, 30} {
		b.Run(fmt.Sprintf("sites=%d", n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("site-%02d", i)
			}
			cp := cluster(b, names)
			ctx := context.Background()
			if _, err := cp.Client.AppsV1().DaemonSets(namespace).Create(ctx, daemonSet("agent"), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			waitReadyPerSite(b, cp, "agent", names, 1)
			plan := rollout.Plan{Waves: []string{rollout.WaveRest}, MaxAtOnce: 1}
			var total, podsReady time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				roller, err := rollout.New(ctx, cp.Client, rollout.Ref{Kind: rollout.KindDaemonSet, Name: "agent", Namespace: namespace}, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				image := fmt.Sprintf("p2p:v%d", i+2)
				start := time.Now()
				res, err := roller.Start(ctx, func(t *corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error) {
					return rollout.SetImages(t, []rollout.ImageSpec{{Image: image}})
				}, "benchmark", plan)
				if err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
				for _, w := range res.Timings {
					podsReady += w.PodsReady
				}
			}
			b.StopTimer()
			runs := float64(b.N)
			b.ReportMetric(float64(total.Milliseconds())/runs, "ms/rollout")
			b.ReportMetric(float64(podsReady.Milliseconds())/runs, "pods-ms/rollout")
			b.ReportMetric(float64((total-podsReady).Milliseconds())/runs, "overhead-ms/rollout")
			b.ReportMetric(float64((total-podsReady).Microseconds())/runs/float64(n)/1000, "overhead-ms/wave")
		})
	}
}

// BenchmarkRolloutController is BenchmarkRolloutOverhead's rollout handed
// to the in-cluster runner (a separate process): --detach, then the time
// until the stored state is Complete, as `status -w` sees it. Against the
// CLI's ms/rollout on the same cluster size, the difference per wave is
// what the controller adds (noticing the rollout, taking its Lease).
//
//	go test ./test/rollout -run '^$' -bench RolloutController -benchtime 3x
func BenchmarkRolloutController(b *testing.B) {
	for _, n := range []int{3, 30} {
		b.Run(fmt.Sprintf("sites=%d", n), func(b *testing.B) {
			names := make([]string, n)
			for i := range names {
				names[i] = fmt.Sprintf("site-%02d", i)
			}
			cp := cluster(b, names)
			ctx := context.Background()
			startController(b, cp, harness.Build(b, "./cmd/stage-rollout-controller"), "bench")
			if _, err := cp.Client.AppsV1().DaemonSets(namespace).Create(ctx, daemonSet("agent"), metav1.CreateOptions{}); err != nil {
				b.Fatal(err)
			}
			waitReadyPerSite(b, cp, "agent", names, 1)
			plan := rollout.Plan{Waves: []string{rollout.WaveRest}, MaxAtOnce: 1}
			var total time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				roller, err := rollout.New(ctx, cp.Client, rollout.Ref{Kind: rollout.KindDaemonSet, Name: "agent", Namespace: namespace}, io.Discard)
				if err != nil {
					b.Fatal(err)
				}
				roller.Detach = true
				image := fmt.Sprintf("p2p:v%d", i+2)
				start := time.Now()
				if _, err := roller.Start(ctx, func(t *corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error) {
					return rollout.SetImages(t, []rollout.ImageSpec{{Image: image}})
				}, "benchmark", plan); err != nil {
					b.Fatal(err)
				}
				res, err := roller.Follow(ctx)
				if err != nil || res.State.Phase != rollout.PhaseComplete {
					b.Fatalf("the controller's rollout ended %v: %v", res.State.Phase, err)
				}
				total += time.Since(start)
			}
			b.StopTimer()
			runs := float64(b.N)
			b.ReportMetric(float64(total.Milliseconds())/runs, "ms/rollout")
			b.ReportMetric(float64(total.Milliseconds())/runs/float64(n), "ms/wave")
		})
	}
}
