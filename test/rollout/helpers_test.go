package rollout_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const namespace = "default"

var sites = []string{"site-a", "site-b", "site-c"}

// cluster starts the full control plane with one kwok node per site.
func cluster(t testing.TB, siteNames []string) *harness.ControlPlane {
	t.Helper()
	ips := make([]string, len(siteNames))
	for i := range siteNames {
		ips[i] = fmt.Sprintf("10.23.%d.%d", i/250, i%250+1)
	}
	return clusterAt(t, siteNames, ips)
}

// clusterAt starts the full control plane with one kwok node per site, at
// the addresses given.
func clusterAt(t testing.TB, siteNames, ips []string) *harness.ControlPlane {
	t.Helper()
	cp := harness.StartForTest(t, harness.All())
	for i, site := range siteNames {
		_, err := cp.AddNode(context.Background(), harness.Node{
			Name: "node-" + site, Site: site, InternalIP: ips[i],
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return cp
}

// stage runs `kubectl stage ARGS`; progress shows in the test log.
func stage(ctx context.Context, t testing.TB, cp *harness.ControlPlane, args ...string) (string, string, error) {
	t.Helper()
	return harness.RunStage(ctx, cp.Kubeconfig, testWriter{t}, args...)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// podTemplate is a P2P node spread one pod per site at most skew 1.
func podTemplate(app, image string) corev1.PodTemplateSpec {
	labels := map[string]string{"app": app}
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: labels},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "node", Image: image}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: api.LabelSite, WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
			}},
		},
	}
}

func statefulSet(name string, replicas int32) *appsv1.StatefulSet {
	tmpl := podTemplate(name, "p2p:v1")
	return &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &replicas, ServiceName: name,
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl,
		},
	}
}

func daemonSet(name string) *appsv1.DaemonSet {
	tmpl := podTemplate(name, "p2p:v1")
	tmpl.Spec.TopologySpreadConstraints = nil
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec:       appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}
}

func deployment(name string, replicas int32) *appsv1.Deployment {
	tmpl := podTemplate(name, "p2p:v1")
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl,
		},
	}
}

// podsBySite lists the app's live pods per site (via their nodes).
func podsBySite(t testing.TB, cp *harness.ControlPlane, app string) map[string][]corev1.Pod {
	t.Helper()
	ctx := context.Background()
	nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	siteOf := map[string]string{}
	for _, n := range nodes.Items {
		siteOf[n.Name] = n.Labels[api.LabelSite]
	}
	pods, err := cp.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]corev1.Pod{}
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil {
			out[siteOf[p.Spec.NodeName]] = append(out[siteOf[p.Spec.NodeName]], p)
		}
	}
	return out
}

// waitReadyPerSite waits until every site has n Ready pods of the app.
func waitReadyPerSite(t testing.TB, cp *harness.ControlPlane, app string, siteNames []string, n int) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		bySite := podsBySite(t, cp, app)
		for _, s := range siteNames {
			ready := 0
			for _, p := range bySite[s] {
				for _, c := range p.Status.Conditions {
					if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
						ready++
					}
				}
			}
			if ready != n || len(bySite[s]) != n {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("%s never had %d Ready pods at each of %v: %v", app, n, siteNames, podsBySite(t, cp, app))
	}
}

// revisions maps each site to the revisions (and images) its pods run.
func revisions(t testing.TB, cp *harness.ControlPlane, app string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for site, pods := range podsBySite(t, cp, app) {
		var parts []string
		for _, p := range pods {
			parts = append(parts, fmt.Sprintf("%d:%s", rollout.PodRevision(p.ObjectMeta), p.Spec.Containers[0].Image))
		}
		out[site] = strings.Join(uniq(parts), ",")
	}
	return out
}

func uniq(in []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// siteRecorder is an HTTP health endpoint that records the order in which
// sites were declared healthy, and fails the sites told to.
type siteRecorder struct {
	mu    sync.Mutex
	order []string
}

func (r *siteRecorder) add(site string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.order = append(r.order, site)
}

func (r *siteRecorder) sites() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.order...)
}

func storedState(t testing.TB, annotations map[string]string) (*rollout.State, rollout.History) {
	t.Helper()
	roller := annotations[api.AnnotationRollout]
	if roller == "" {
		t.Fatalf("no %s annotation", api.AnnotationRollout)
	}
	state, history, err := rollout.ReadAnnotations(annotations)
	if err != nil {
		t.Fatal(err)
	}
	return state, history
}

// deployStatefulSet creates the "node" StatefulSet, one pod per site, and
// waits until every site has its Ready pod.
func deployStatefulSet(t testing.TB, cp *harness.ControlPlane) {
	t.Helper()
	if _, err := cp.Client.AppsV1().StatefulSets(namespace).Create(context.Background(), statefulSet("node", int32(len(sites))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPerSite(t, cp, "node", sites, 1)
}
