package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/runlease"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// One runner at a time: a `resume` while another command drives the
// rollout is refused naming that runner, with the state untouched. The
// driving command is then killed (SIGKILL: it releases nothing); once its
// lease has expired, a `resume` takes over from the stored state and
// finishes the rollout without replacing a finished site again.
func TestRolloutOneRunnerAtATimeAndTakeover(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	bin := harness.BuildStage(t)

	// The first runner is a separate process whose health check holds
	// site-b's wave until the test is done with it.
	dir := t.TempDir()
	reached := filepath.Join(dir, "reached")
	check := `[ "$STAGE_ROLLOUT_SITE" != site-b ] || [ -e ` + filepath.Join(dir, "taken-over") + ` ] || { touch ` + reached + `; sleep 600; }`
	runner, err := harness.StartDaemon("kubectl-stage rollout", bin, []string{"--kubeconfig", cp.Kubeconfig,
		"rollout", "sts/node", "--image", "p2p:v2", "--min-ready", "0s", "--health-exec", check}, filepath.Join(dir, "runner.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(runner.Kill)
	waitFile(t, reached)
	siteA := podsBySite(t, cp, "node")["site-a"][0]

	before, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = stage(ctx, t, cp, "rollout", "resume", "node")
	want := "the rollout is being driven by kubectl stage rollout ("
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), fmt.Sprintf(", pid %d) (lease default/kubectl-stage-rollout-statefulset-node, held until ", runner.Pid())) {
		t.Fatalf("resume while another runner drives: %v; want it refused naming the runner (%q, pid %d)", err, want, runner.Pid())
	}
	after, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Annotations[api.AnnotationRollout] != before.Annotations[api.AnnotationRollout] {
		t.Errorf("the refused resume changed the rollout state:\n%s\nwas\n%s", after.Annotations[api.AnnotationRollout], before.Annotations[api.AnnotationRollout])
	}

	// A crash: nothing released, the lease runs out by itself.
	runner.Kill()
	lease, err := cp.Client.CoordinationV1().Leases(namespace).Get(ctx, runlease.Name(rollout.KindStatefulSet, "node"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expires := lease.Spec.RenewTime.Add(time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second)
	if err := os.WriteFile(filepath.Join(dir, "taken-over"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*runlease.DefaultDuration, true, func(context.Context) (bool, error) {
		return time.Now().After(expires), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := stage(ctx, t, cp, "rollout", "resume", "node")
	if err != nil {
		t.Fatalf("resume after the runner died: %v\n%s", err, out)
	}
	sts, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state, _ := storedState(t, sts.Annotations)
	if state.Phase != rollout.PhaseComplete || !slices.Equal(state.Done, []string{"site-a", "site-b", "site-c"}) {
		t.Errorf("after the takeover: phase %s, sites done in order %v", state.Phase, state.Done)
	}
	if now := podsBySite(t, cp, "node")["site-a"][0]; now.UID != siteA.UID {
		t.Errorf("the takeover replaced site-a's pod again (%s became %s)", siteA.UID, now.UID)
	}
	for site, rev := range revisions(t, cp, "node") {
		if rev != "2:p2p:v2" {
			t.Errorf("site %s runs %s after the takeover", site, rev)
		}
	}
}
