package enrollment

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// TestDryRunPersistsNothing runs init, join and leave under --dry-run=client
// and --dry-run=server against a real API server: neither changes a stored
// object, and only the server mode sends the writes, which the API server's
// admission then refuses when a quota forbids them.
func TestDryRunPersistsNothing(t *testing.T) {
	ctx := context.Background()
	cp := startCluster(t)
	kc := cp.Kubeconfig
	dir := t.TempDir()
	suffix := map[string]string{"client": "(dry run)", "server": "(server dry run)"}

	for _, mode := range []string{"client", "server"} {
		out, errOut, err := stage(t, kc, "init", "--hub-endpoint", "198.18.0.1", "--dry-run="+mode)
		if err != nil {
			t.Fatalf("init --dry-run=%s: %v\n%s", mode, err, errOut)
		}
		want := "kubectl-stage would be initialized: overlay 10.23.0.0/16, openvpn hub at 198.18.0.1:1194, API server over the overlay 10.23.0.1:6443 " + suffix[mode] + "\n"
		if out != want {
			t.Errorf("init --dry-run=%s printed %q, want %q", mode, out, want)
		}
		if _, err := cp.Client.CoreV1().Namespaces().Get(ctx, api.SystemNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("init --dry-run=%s created namespace %s (err %v)", mode, api.SystemNamespace, err)
		}
	}

	mustStage(t, kc, "init", "--hub-endpoint", "198.18.0.1")
	mustStage(t, kc, "join", "tokyo", "--node", "tokyo-1", "-f", filepath.Join(dir, "tokyo-1.sh"))
	if _, err := cp.AddNode(ctx, harness.Node{Name: "tokyo-1", Site: "tokyo", InternalIP: "10.23.0.2"}); err != nil {
		t.Fatal(err)
	}

	before := snapshot(t, cp)
	for _, mode := range []string{"client", "server"} {
		bundle := filepath.Join(dir, mode+".sh")
		_, errOut, err := stage(t, kc, "join", "osaka", "--node", "osaka-1", "-f", bundle, "--dry-run="+mode)
		if err != nil {
			t.Fatalf("join --dry-run=%s: %v\n%s", mode, err, errOut)
		}
		if !strings.Contains(errOut, suffix[mode]) {
			t.Errorf("join --dry-run=%s does not say it is a dry run:\n%s", mode, errOut)
		}
		if _, err := os.Stat(bundle); !os.IsNotExist(err) {
			t.Errorf("join --dry-run=%s wrote a bundle", mode)
		}

		out, errOut, err := stage(t, kc, "leave", "tokyo-1", "--dry-run="+mode)
		if err != nil {
			t.Fatalf("leave --dry-run=%s: %v\n%s", mode, err, errOut)
		}
		if want := "node tokyo-1 would leave the staging cluster " + suffix[mode] + "\n"; out != want {
			t.Errorf("leave --dry-run=%s printed %q, want %q", mode, out, want)
		}
		for _, step := range []string{"cordoned tokyo-1 ", "revoked tokyo-1's VPN certificate", "deleted node tokyo-1 ", "released overlay IP 10.23.0.2; tokyo-1 has left site tokyo " + suffix[mode]} {
			if !strings.Contains(errOut, step) {
				t.Errorf("leave --dry-run=%s does not report %q:\n%s", mode, step, errOut)
			}
		}
		if after := snapshot(t, cp); after != before {
			t.Fatalf("--dry-run=%s changed the cluster:\nbefore:\n%s\nafter:\n%s", mode, before, after)
		}
	}

	// Only server mode sends the writes: with a quota that allows no new
	// ConfigMap, the API server refuses the join's node record, while the
	// client mode, which sends nothing, plans the join as before.
	quotaFull(t, cp)
	if _, errOut, err := stage(t, kc, "join", "osaka", "--node", "osaka-1", "--dry-run=client", "-f", filepath.Join(dir, "c.sh")); err != nil {
		t.Fatalf("join --dry-run=client under the quota: %v\n%s", err, errOut)
	}
	_, _, err := stage(t, kc, "join", "osaka", "--node", "osaka-1", "--dry-run=server", "-f", filepath.Join(dir, "s.sh"))
	if err == nil || !strings.Contains(err.Error(), "exceeded quota: no-more-configmaps") {
		t.Fatalf("join --dry-run=server under the quota: error %v, want the API server's quota refusal", err)
	}
	if after := snapshot(t, cp); after != before {
		t.Fatalf("a refused server dry run changed the cluster:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// snapshot describes what kubectl-stage stores and what leave changes: the
// ConfigMaps and Secrets of its namespace, the bootstrap tokens, and the
// nodes' existence and schedulability (kwok's heartbeats change their
// resourceVersions all the time).
func snapshot(t *testing.T, cp *harness.ControlPlane) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	cms, err := cp.Client.CoreV1().ConfigMaps(api.SystemNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, cm := range cms.Items {
		fmt.Fprintf(&b, "configmap %s %s\n", cm.Name, cm.ResourceVersion)
	}
	for _, ns := range []string{api.SystemNamespace, metav1.NamespaceSystem} {
		secrets, err := cp.Client.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range secrets.Items {
			fmt.Fprintf(&b, "secret %s/%s %s\n", ns, s.Name, s.ResourceVersion)
		}
	}
	nodes, err := cp.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes.Items {
		fmt.Fprintf(&b, "node %s unschedulable=%t\n", n.Name, n.Spec.Unschedulable)
	}
	return b.String()
}

// quotaFull puts a quota on kubectl-stage's namespace that allows exactly
// the ConfigMaps it has, and waits until the quota controller has counted
// them (until then the quota refuses everything for a different reason).
func quotaFull(t *testing.T, cp *harness.ControlPlane) {
	t.Helper()
	ctx := context.Background()
	cms, err := cp.Client.CoreV1().ConfigMaps(api.SystemNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := resource.MustParse(fmt.Sprint(len(cms.Items)))
	quota := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "no-more-configmaps", Namespace: api.SystemNamespace},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceConfigMaps: count}},
	}
	if _, err := cp.Client.CoreV1().ResourceQuotas(api.SystemNamespace).Create(ctx, quota, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		q, err := cp.Client.CoreV1().ResourceQuotas(api.SystemNamespace).Get(ctx, quota.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used, counted := q.Status.Used[corev1.ResourceConfigMaps]
		return counted && used.Cmp(count) == 0, nil
	})
	if err != nil {
		t.Fatalf("the quota controller did not count the ConfigMaps: %v", err)
	}
}
