package harness_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// TestControlPlaneSchedulesAcrossSites proves the harness end to end: the
// real scheduler binds a Deployment's pods to kwok nodes at two sites, kwok
// reports them Running with the node's address as host IP, and stopping the
// control plane leaves no process and no listening port behind.
func TestControlPlaneSchedulesAcrossSites(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	cp, err := harness.Start(ctx, harness.All())
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			cp.Stop()
		}
	}()

	version, err := cp.Client.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("asking the API server its version over HTTPS: %v", err)
	}
	if version.GitVersion != cp.Tools.KubernetesVersion {
		t.Errorf("API server reports %s, want the pinned %s", version.GitVersion, cp.Tools.KubernetesVersion)
	}
	if !strings.HasPrefix(cp.URL(), "https://") {
		t.Errorf("API server URL %q is not HTTPS", cp.URL())
	}

	nodeIPs := map[string]string{}
	for i, site := range []string{"tokyo", "tokyo", "osaka", "osaka"} {
		name := fmt.Sprintf("%s-%d", site, i)
		ip := fmt.Sprintf("10.23.0.%d", 10+i)
		if _, err := cp.AddNode(ctx, harness.Node{Name: name, Site: site, InternalIP: ip}); err != nil {
			t.Fatal(err)
		}
		nodeIPs[name] = ip
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p2p"}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	replicas := int32(4)
	labels := map[string]string{"app": "gossip"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "gossip", Namespace: "p2p"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "node", Image: "example.invalid/gossip:v1"}},
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{
						MaxSkew: 1, TopologyKey: api.LabelSite, WhenUnsatisfiable: corev1.DoNotSchedule,
						LabelSelector: &metav1.LabelSelector{MatchLabels: labels},
					}},
				},
			},
		},
	}
	if _, err := cp.Client.AppsV1().Deployments("p2p").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	var pods []corev1.Pod
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Client.CoreV1().Pods("p2p").List(ctx, metav1.ListOptions{LabelSelector: "app=gossip"})
		if err != nil {
			return false, err
		}
		pods = list.Items
		if len(pods) != int(replicas) {
			return false, nil
		}
		for _, p := range pods {
			if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName == "" {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("pods did not all run: %v; pods: %s", err, describePods(pods))
	}

	perSite := map[string]int{}
	for _, p := range pods {
		site := strings.SplitN(p.Spec.NodeName, "-", 2)[0]
		perSite[site]++
		if want := nodeIPs[p.Spec.NodeName]; p.Status.HostIP != want {
			t.Errorf("pod %s on %s has hostIP %q, want the node's InternalIP %q", p.Name, p.Spec.NodeName, p.Status.HostIP, want)
		}
		if p.Status.PodIP == "" {
			t.Errorf("pod %s has no pod IP", p.Name)
		}
	}
	if perSite["tokyo"] != 2 || perSite["osaka"] != 2 {
		t.Errorf("pods per site = %v, want 2 at tokyo and 2 at osaka (topology spread on %s)", perSite, api.LabelSite)
	}

	pids := cp.PIDs()
	for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if pids[name] == 0 {
			t.Errorf("%s is not among the running daemons %v", name, pids)
		}
	}
	apiAddr := hostPort(t, cp.URL())

	cp.Stop()
	stopped = true

	for name, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("%s (pid %d) still runs after Stop", name, pid)
		}
	}
	if conn, err := net.DialTimeout("tcp", apiAddr, time.Second); err == nil {
		_ = conn.Close()
		t.Errorf("something still listens on the API server's address %s after Stop", apiAddr)
	}
}

func describePods(pods []corev1.Pod) string {
	var parts []string
	for _, p := range pods {
		parts = append(parts, fmt.Sprintf("%s node=%q phase=%s", p.Name, p.Spec.NodeName, p.Status.Phase))
	}
	return strings.Join(parts, "; ")
}

func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
