package rollout_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/runlease"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// startController runs the in-cluster rollout runner as its own process,
// as its Deployment would, until the test ends: with the chart's
// ServiceAccount and so exactly the chart's permissions.
func startController(t testing.TB, cp *harness.ControlPlane, bin, name string) *harness.Daemon {
	t.Helper()
	port := harness.FreePort(t)
	d, err := harness.StartDaemon(name, bin, []string{"--kubeconfig", controllerKubeconfig(t, cp), "--identity", name,
		"--metrics-bind-address", "0", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", port)},
		filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	if err := d.WaitHealthy(context.Background(), fmt.Sprintf("http://127.0.0.1:%d/healthz", port)); err != nil {
		t.Fatal(err)
	}
	return d
}

// controllerServiceAccount is the ServiceAccount the chart runs the
// controller as (release harness.ChartRelease).
const controllerServiceAccount = harness.ChartRelease + "-kubectl-stage-rollout"

// controllerKubeconfig installs the chart's rollout controller identity,
// its ServiceAccount, ClusterRole and ClusterRoleBinding as `helm template
// --set rolloutController.enabled=true` renders them, and returns a
// kubeconfig with a token of that ServiceAccount (TokenRequest API, as its
// pods get): a permission the chart lacks fails the test as it would fail
// in a cluster. Nothing else of the chart is installed: its webhook would
// intercept the test's pods. Applying again (a second replica) changes
// nothing.
func controllerKubeconfig(t testing.TB, cp *harness.ControlPlane) string {
	t.Helper()
	_, objs := harness.RenderChart(t, api.SystemNamespace, "rolloutController.enabled=true")
	ns := &unstructured.Unstructured{}
	ns.SetAPIVersion("v1")
	ns.SetKind("Namespace")
	ns.SetName(api.SystemNamespace)
	list := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "v1", "kind": "List"}}
	list.Items = append(list.Items, *ns)
	for _, kind := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding"} {
		obj := objs[kind+"/"+controllerServiceAccount]
		if obj == nil {
			t.Fatalf("the chart renders no %s/%s for the rollout controller", kind, controllerServiceAccount)
		}
		list.Items = append(list.Items, *obj)
	}
	manifest, err := list.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	apply := exec.Command(cp.Tools.Kubectl, "--kubeconfig", cp.Kubeconfig, "apply", "-f", "-")
	apply.Stdin = bytes.NewReader(manifest)
	if out, err := apply.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply of the chart's rollout controller RBAC: %v\n%s", err, out)
	}
	// Valid well past any test (the benchmark's runs included).
	cfg, err := cp.ServiceAccountConfig(context.Background(), api.SystemNamespace, controllerServiceAccount, 24*time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return harness.WriteKubeconfig(t, cfg)
}

// waitLeaseHolder waits until the app's rollout lease is held by holder.
func waitLeaseHolder(t *testing.T, cp *harness.ControlPlane, kind, app, holder string) {
	t.Helper()
	name := runlease.Name(kind, app)
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		lease, err := cp.Client.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == holder, nil
	})
	if err != nil {
		t.Fatalf("lease %s never held by %q", name, holder)
	}
}

// followTimeout bounds `status -w` so that a runner that never finishes
// fails the test instead of hanging it; it is far above a passing run.
const followTimeout = 3 * time.Minute

// follow runs `rollout status APP -w` until the rollout ends.
func follow(t *testing.T, cp *harness.ControlPlane, app string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), followTimeout)
	defer cancel()
	out, _, err := stage(ctx, t, cp, "rollout", "status", app, "-w")
	return out, err
}

// A --detach rollout returns at once and completes with no CLI running;
// `rollout status -w` follows it to the end.
func TestRolloutDetachedCompletesInCluster(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	startController(t, cp, harness.Build(t, "./cmd/stage-rollout-controller"), "replica-1")

	_, errOut, err := stage(ctx, t, cp, "rollout", "sts/node", "--image", "p2p:v2", "--min-ready", "0s", "--detach")
	if err != nil || !strings.Contains(errOut, "detached: the in-cluster rollout controller runs the waves") {
		t.Fatalf("rollout --detach: %v\n%s", err, errOut)
	}
	completedInOrder(t, cp, "the detached rollout")
}

// completedInOrder follows sts/node's rollout (what) with status -w until
// it completes, and checks that the sites were done in order and all run
// revision 2.
func completedInOrder(t *testing.T, cp *harness.ControlPlane, what string) {
	t.Helper()
	out, err := follow(t, cp, "node")
	if err != nil || !strings.Contains(out, "statefulset/node revision 2: Complete") {
		t.Fatalf("status -w of %s: %v\n%s", what, err, out)
	}
	sts, err := cp.Client.AppsV1().StatefulSets(namespace).Get(context.Background(), "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state, _ := storedState(t, sts.Annotations)
	if !slices.Equal(state.Done, []string{"site-a", "site-b", "site-c"}) {
		t.Errorf("sites done in order %v", state.Done)
	}
	for site, rev := range revisions(t, cp, "node") {
		if rev != "2:p2p:v2" {
			t.Errorf("site %s runs %s after %s", site, rev, what)
		}
	}
}

// probe is a health endpoint that records each call's site, and holds
// site-b's until released.
type probe struct {
	mu       sync.Mutex
	calls    []string
	reachedB chan struct{}
	release  chan struct{}
	once     sync.Once
}

func (p *probe) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	site := r.URL.Query().Get("site")
	p.mu.Lock()
	p.calls = append(p.calls, site)
	p.mu.Unlock()
	if site != "site-b" {
		return
	}
	p.once.Do(func() { close(p.reachedB) })
	select {
	case <-p.release:
	case <-r.Context().Done():
		http.Error(w, "caller went away", http.StatusServiceUnavailable)
	}
}

// newProbe serves a probe until the test ends; release lets site-b's
// checks through (at the latest when the test ends).
func newProbe(t *testing.T) (p *probe, url string, release func()) {
	p = &probe{reachedB: make(chan struct{}), release: make(chan struct{})}
	server := httptest.NewServer(p)
	var once sync.Once
	release = func() { once.Do(func() { close(p.release) }) }
	// Cleanups run last-in first-out: release the held checks, then stop.
	t.Cleanup(server.Close)
	t.Cleanup(release)
	return p, server.URL + "/healthy?site={site}", release
}

func (p *probe) sites() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// A CLI killed (SIGKILL) mid-wave leaves its lease to expire; the
// controller takes the rollout over from the stored state and finishes it,
// without replacing a finished site again. While the controller drives it,
// a CLI resume is refused naming the controller, and changes nothing.
func TestRolloutControllerTakesOverFromKilledCLI(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	startController(t, cp, harness.Build(t, "./cmd/stage-rollout-controller"), "replica-1")
	p, probeURL, release := newProbe(t)

	cli, err := harness.StartDaemon("kubectl-stage rollout", harness.BuildStage(t), []string{"--kubeconfig", cp.Kubeconfig,
		"rollout", "sts/node", "--image", "p2p:v2", "--min-ready", "0s", "--health-http", probeURL},
		filepath.Join(t.TempDir(), "cli.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cli.Kill)
	<-p.reachedB
	siteA := podsBySite(t, cp, "node")["site-a"][0]
	cli.Kill()

	waitLeaseHolder(t, cp, rollout.KindStatefulSet, "node", "rollout controller replica-1")
	before, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = stage(ctx, t, cp, "rollout", "resume", "node")
	if err == nil || !strings.Contains(err.Error(), "the rollout is being driven by rollout controller replica-1") {
		t.Fatalf("resume while the controller drives: %v", err)
	}
	after, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the refused resume wrote the StatefulSet")
	}

	release()
	finishedByTakeover(t, cp, p, siteA, "the controller")
}

// finishedByTakeover checks, once the held health check is released, that
// the runner that took over (who) finished the rollout of sts/node: sites
// done in order, site-b checked again (the wave it took over), nothing
// else twice, site-a's pod (siteA) not replaced again, every site on v2.
func finishedByTakeover(t *testing.T, cp *harness.ControlPlane, p *probe, siteA corev1.Pod, who string) {
	t.Helper()
	completedInOrder(t, cp, "the rollout "+who+" took over")
	if got, want := p.sites(), []string{"site-a", "site-b", "site-b", "site-c"}; !slices.Equal(got, want) {
		t.Errorf("health checks by site %v, want %v (site-b again by %s, nothing else twice)", got, want, who)
	}
	if now := podsBySite(t, cp, "node")["site-a"][0]; now.UID != siteA.UID {
		t.Errorf("%s replaced site-a's pod again", who)
	}
}

// Two controller replicas: the one holding the rollout is killed
// (SIGKILL) in the middle of site-b's wave; the other takes over once its
// Lease has expired and finishes, with no site updated twice or skipped.
func TestRolloutControllerReplicaKilledMidWave(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	bin := harness.Build(t, "./cmd/stage-rollout-controller")
	replicas := map[string]*harness.Daemon{}
	for _, name := range []string{"replica-1", "replica-2"} {
		replicas["rollout controller "+name] = startController(t, cp, bin, name)
	}
	p, probeURL, release := newProbe(t)

	if _, _, err := stage(ctx, t, cp, "rollout", "sts/node", "--image", "p2p:v2", "--min-ready", "0s", "--detach",
		"--health-http", probeURL); err != nil {
		t.Fatal(err)
	}
	<-p.reachedB
	lease, err := cp.Client.CoordinationV1().Leases(namespace).Get(ctx, runlease.Name(rollout.KindStatefulSet, "node"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	first := *lease.Spec.HolderIdentity
	siteA := podsBySite(t, cp, "node")["site-a"][0]
	replicas[first].Kill()
	var other string
	for name := range replicas {
		if name != first {
			other = name
		}
	}
	if other == "" {
		t.Fatalf("the rollout is held by %q, not by a replica", first)
	}
	waitLeaseHolder(t, cp, rollout.KindStatefulSet, "node", other)
	release()
	finishedByTakeover(t, cp, p, siteA, "the second replica")
}
