package enrollment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// startCluster is a kubeadm-like control plane whose API server certificate
// also carries the hub's overlay address, as init requires.
func startCluster(t *testing.T) *harness.ControlPlane {
	t.Helper()
	opts := harness.All()
	opts.ServingIPs = []net.IP{net.ParseIP("10.23.0.1")}
	cp := harness.StartForTest(t, opts)
	if err := cp.KubeadmBootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestEnrollmentLifecycle(t *testing.T) {
	ctx := context.Background()
	cp := startCluster(t)
	kc := cp.Kubeconfig
	dir := t.TempDir()
	hubDir := filepath.Join(dir, "hub")

	t.Run("join before init", func(t *testing.T) {
		_, _, err := stage(t, kc, "join", "tokyo", "--node", "tokyo-1", "-f", filepath.Join(dir, "x.sh"))
		if err == nil || !strings.Contains(err.Error(), "run `kubectl stage init") {
			t.Fatalf("error = %v, want the not-initialized hint", err)
		}
	})

	t.Run("overlay overlapping the service CIDR", func(t *testing.T) {
		_, _, err := stage(t, kc, "init", "--hub-endpoint", "198.18.0.1", "--overlay-cidr", "10.96.128.0/24")
		if err == nil || !strings.Contains(err.Error(), "overlaps the cluster's service CIDR 10.96.0.0/16") {
			t.Fatalf("error = %v", err)
		}
		if _, err := cp.Client.CoreV1().Namespaces().Get(ctx, api.SystemNamespace, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a failed init left namespace %s behind (err %v)", api.SystemNamespace, err)
		}
	})

	t.Run("certificate without the overlay address", func(t *testing.T) {
		_, _, err := stage(t, kc, "init", "--hub-endpoint", "198.18.0.1", "--apiserver-endpoint", "10.23.9.9:6443")
		if err == nil || !strings.Contains(err.Error(), "--apiserver-cert-extra-sans=10.23.9.9") {
			t.Fatalf("error = %v, want the kubeadm fix", err)
		}
	})

	mustStage(t, kc, "init", "--hub-endpoint", "198.18.0.1", "--hub-config-dir", hubDir)
	caBefore := secretData(t, cp, api.VPNCAName)
	mustStage(t, kc, "init", "--hub-endpoint", "198.18.0.1")
	if caAfter := secretData(t, cp, api.VPNCAName); string(caAfter["tls.key"]) != string(caBefore["tls.key"]) {
		t.Error("re-running init replaced the VPN CA")
	}
	for _, f := range []string{"server.conf", "ca.crt", "hub.crt", "hub.key", "tls-crypt.key", "crl.pem"} {
		if mode := fileMode(t, filepath.Join(hubDir, f)); mode != 0o600 {
			t.Errorf("hub file %s has mode %o, want 600", f, mode)
		}
	}

	joins := []struct{ site, node, wantIP string }{
		{"tokyo", "tokyo-1", "10.23.0.2"},
		{"tokyo", "tokyo-2", "10.23.0.3"},
		{"osaka", "osaka-1", "10.23.0.4"},
	}
	for _, j := range joins {
		bundlePath := filepath.Join(dir, j.node+".join.sh")
		out := mustStage(t, kc, "join", j.site, "--node", j.node, "-f", bundlePath)
		if !strings.Contains(out, "overlay IP "+j.wantIP) {
			t.Errorf("join %s: output %q lacks overlay IP %s", j.node, out, j.wantIP)
		}
		if mode := fileMode(t, bundlePath); mode != 0o600 {
			t.Errorf("bundle %s has mode %o, want 600", bundlePath, mode)
		}
		script, _ := os.ReadFile(bundlePath)
		tokenID := between(string(script), "TOKEN_ID='", "'")
		tokenSecret := string(secretIn(t, cp, metav1.NamespaceSystem, "bootstrap-token-"+tokenID).Data["token-secret"])
		if tokenSecret == "" || strings.Contains(out, tokenSecret) {
			t.Errorf("join %s: token secret missing, or printed without --print-join-command", j.node)
		}
	}

	t.Run("bad input changes nothing", func(t *testing.T) {
		before := allocations(t, cp)
		badBundle := filepath.Join(dir, "bad.sh")
		tests := []struct {
			args []string
			want string
		}{
			{[]string{"join", "Tokyo_West", "--node", "x-1", "-f", badBundle}, `invalid site name "Tokyo_West"`},
			{[]string{"join", "tokyo", "--node", "Bad.Name!", "-f", badBundle}, `invalid node name "Bad.Name!"`},
			{[]string{"join", "tokyo", "--node", "tokyo-1", "-f", badBundle}, `node "tokyo-1" is already enrolled at site "tokyo" with overlay IP 10.23.0.2`},
			{[]string{"join", "tokyo", "-f", badBundle}, "--node is required"},
			// This cluster's overlay is OpenVPN: a star, where an endpoint means nothing.
			{[]string{"join", "tokyo", "--node", "x-1", "--endpoint", "203.0.113.7:51820", "-f", badBundle}, "the overlay uses openvpn, a star in which every path goes through the hub"},
			{[]string{"join", "tokyo", "--node", "x-1", "--relay-only", "-f", badBundle}, "(--endpoint, --relay-only)"},
			{[]string{"init", "--hub-endpoint", "198.18.0.1", "--overlay-cidr", "10.50.0.0/16"}, "refusing to change it to 10.50.0.0/16"},
			{[]string{"init", "--hub-endpoint", "198.18.0.1", "--vpn", "wireguard"}, "refusing to switch to wireguard"},
			{[]string{"leave", "nobody"}, `node "nobody" is not enrolled`},
		}
		for _, tt := range tests {
			_, _, err := stage(t, kc, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("kubectl stage %v: error = %v, want %q", tt.args, err, tt.want)
			}
		}
		if after := allocations(t, cp); after != before {
			t.Errorf("failed commands changed the allocations:\n%s\nbecame\n%s", before, after)
		}
		if _, err := os.Stat(badBundle); !os.IsNotExist(err) {
			t.Error("a failed join wrote a bundle")
		}
	})

	t.Run("dry run", func(t *testing.T) {
		before := allocations(t, cp)
		_, errOut, err := stage(t, kc, "join", "osaka", "--node", "osaka-2", "--dry-run", "-f", filepath.Join(dir, "dry.sh"))
		if err != nil || !strings.Contains(errOut, "would enroll osaka-2 at site osaka with overlay IP 10.23.0.5") {
			t.Fatalf("dry run: %v %s", err, errOut)
		}
		if allocations(t, cp) != before {
			t.Error("dry run allocated an address")
		}
	})

	// The nodes boot: kubeadm join registers them with the overlay IP as
	// InternalIP and the site label (kwok plays their kubelets).
	for _, j := range joins[:2] {
		if _, err := cp.AddNode(ctx, harness.Node{Name: j.node, Site: j.site, InternalIP: j.wantIP}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("sites and status", func(t *testing.T) {
		out := mustStage(t, kc, "sites")
		for _, want := range []string{"SITE", "osaka", "tokyo", "2/2"} {
			if !strings.Contains(out, want) {
				t.Errorf("sites lacks %q:\n%s", want, out)
			}
		}
		out = mustStage(t, kc, "status", "-o", "wide")
		for _, want := range []string{"tokyo-1", "10.23.0.2", "Ready", "osaka-1", "NotJoined", "expires in", "openvpn"} {
			if !strings.Contains(out, want) {
				t.Errorf("status lacks %q:\n%s", want, out)
			}
		}
		var list v1alpha1.EnrolledNodeList
		if err := json.Unmarshal([]byte(mustStage(t, kc, "status", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if list.APIVersion != "kubectl-stage.io/v1alpha1" || list.Kind != "EnrolledNodeList" || len(list.Items) != 3 || list.Items[2].Status.InternalIP != "10.23.0.3" {
			t.Errorf("status -o json = %+v", list)
		}
		if got := mustStage(t, kc, "status", "-o", "name"); got != "enrollednode.kubectl-stage.io/osaka-1\nenrollednode.kubectl-stage.io/tokyo-1\nenrollednode.kubectl-stage.io/tokyo-2\n" {
			t.Errorf("status -o name = %q", got)
		}
		if got := mustStage(t, kc, "sites", "-o", "jsonpath={.items[*].metadata.name}"); got != "osaka tokyo" {
			t.Errorf("sites -o jsonpath = %q", got)
		}
	})

	t.Run("leave is blocked by a PodDisruptionBudget, then finishes on re-run", func(t *testing.T) {
		guardPodOn(t, cp, "tokyo-1")
		_, _, err := stage(t, kc, "leave", "tokyo-1", "--timeout", "3s")
		if err == nil || !strings.Contains(err.Error(), "re-run `kubectl stage leave tokyo-1`") {
			t.Fatalf("leave with a blocking PDB: %v", err)
		}
		if !strings.Contains(allocations(t, cp), "10.23.0.2 tokyo-1") {
			t.Error("a failed drain released the overlay IP")
		}
		if err := cp.Client.PolicyV1().PodDisruptionBudgets("default").Delete(ctx, "guard", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		mustStage(t, kc, "leave", "tokyo-1", "--timeout", "1m")
		if _, err := cp.Client.CoreV1().Nodes().Get(ctx, "tokyo-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("node tokyo-1 still exists: %v", err)
		}
		if strings.Contains(allocations(t, cp), "tokyo-1") {
			t.Error("overlay IP of tokyo-1 not released")
		}
		hub := secretData(t, cp, api.VPNHubName)
		if !strings.Contains(string(hub["revoked"]), " ") {
			t.Errorf("no revocation recorded: %q", hub["revoked"])
		}
		mustStage(t, kc, "hub-config", "--dir", hubDir)
		if _, err := os.Stat(filepath.Join(hubDir, "ccd", "tokyo-1")); !os.IsNotExist(err) {
			t.Error("the hub still has a client-config-dir entry for tokyo-1")
		}
		if _, err := os.Stat(filepath.Join(hubDir, "ccd", "tokyo-2")); err != nil {
			t.Errorf("tokyo-2's entry is missing: %v", err)
		}
	})

	t.Run("missing permission", func(t *testing.T) {
		limited, err := cp.UserConfig("site-operator")
		if err != nil {
			t.Fatal(err)
		}
		before := allocations(t, cp)
		_, _, err = stage(t, harness.WriteKubeconfig(t, limited), "join", "tokyo", "--node", "tokyo-9", "-f", filepath.Join(dir, "t9.sh"))
		if err == nil || !strings.Contains(err.Error(), "create secrets in namespace kube-system") || !strings.Contains(err.Error(), "kubectl auth can-i") {
			t.Fatalf("error = %v, want the missing verbs named", err)
		}
		if allocations(t, cp) != before {
			t.Error("a forbidden join changed the allocations")
		}
	})
}

// TestConcurrentJoinProcesses starts many `kubectl stage join` processes at
// once, as many people enrolling machines at the same moment would: every
// one must succeed, with its own address, and nothing may be lost.
func TestConcurrentJoinProcesses(t *testing.T) {
	sizes := []int{50, 200}
	if testing.Short() {
		sizes = sizes[:1]
	}
	bin := harness.BuildStage(t)
	for _, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) { concurrentJoins(t, bin, n) })
	}
}

// transportFailure is how a client says the API server's connection was
// lost, not that the request was refused.
var transportFailure = regexp.MustCompile(`TLS handshake timeout|unexpected EOF|connection reset by peer|http2: client connection lost`)

func concurrentJoins(t *testing.T, bin string, n int) {
	ctx := context.Background()
	cp := startCluster(t)
	mustStage(t, cp.Kubeconfig, "init", "--hub-endpoint", "198.18.0.1")
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, n)
	outs := make([]bytes.Buffer, n)
	for i := range n {
		cmds[i] = exec.Command(bin, "--kubeconfig", cp.Kubeconfig, "join", fmt.Sprintf("site-%d", i%3),
			"--node", fmt.Sprintf("node-%03d", i), "-f", filepath.Join(dir, fmt.Sprintf("node-%03d.sh", i)))
		cmds[i].Stdout, cmds[i].Stderr = &outs[i], &outs[i]
	}
	// All processes are started before any is waited on.
	start := time.Now()
	for i, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting join %d: %v", i, err)
		}
	}
	failed, rerun := 0, 0
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			// On 2 shared cores, 200 clients at once can lose their connection
			// to the API server before writing anything; a user runs the
			// command again, and so does the test, once. Had the first run
			// written anything, the second would be refused (the node would
			// exist) and fail the test.
			if transportFailure.MatchString(outs[i].String()) {
				rerun++
				again := exec.Command(cmds[i].Path, cmds[i].Args[1:]...)
				out, err := again.CombinedOutput()
				if err == nil {
					continue
				}
				outs[i].WriteString("\nrun again:\n" + string(out))
			}
			failed++
			t.Errorf("join node-%03d: %v\n%s", i, err, outs[i].String())
		}
	}
	t.Logf("%d join processes at once: %d failed, %d run again after losing their connection, all done in %s", n, failed, rerun, time.Since(start).Round(time.Millisecond))

	table, err := siteStore(cp).Allocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	owners := map[string]bool{}
	for ip, owner := range table {
		if !strings.HasPrefix(ip.String(), "10.23.") || owners[owner] {
			t.Errorf("allocation %s -> %s is outside the overlay or a second address of its node", ip, owner)
		}
		owners[owner] = true
	}
	if len(table) != n || len(owners) != n {
		t.Errorf("allocation table has %d addresses for %d owners, want %d each (a lost update?)", len(table), len(owners), n)
	}
	report, err := siteStore(cp).BuildReport(ctx, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Nodes.Items) != n || len(report.Sites.Items) != 3 {
		t.Errorf("report has %d nodes at %d sites, want %d at 3", len(report.Nodes.Items), len(report.Sites.Items), n)
	}
	for _, node := range report.Nodes.Items {
		if ip, ok := table.AddressOf(node.Name); !ok || ip.String() != node.Spec.OverlayIP {
			t.Errorf("node %s is recorded with %s, the table gives it %v", node.Name, node.Spec.OverlayIP, ip)
		}
	}
	tokens, err := cp.Client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{FieldSelector: "type=bootstrap.kubernetes.io/token"})
	if err != nil {
		t.Fatal(err)
	}
	if len(tokens.Items) != n {
		t.Errorf("%d bootstrap tokens for %d joins", len(tokens.Items), n)
	}
}

func guardPodOn(t *testing.T, cp *harness.ControlPlane, node string) {
	t.Helper()
	ctx := context.Background()
	one := int32(1)
	labels := map[string]string{"app": "guarded"}
	_, err := cp.Client.AppsV1().Deployments("default").Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "guarded"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					NodeSelector: map[string]string{corev1.LabelHostname: node},
					Containers:   []corev1.Container{{Name: "c", Image: "example.invalid/guarded:v1"}},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	minAvailable := intstr.FromInt32(1)
	_, err = cp.Client.PolicyV1().PodDisruptionBudgets("default").Create(ctx, &policyv1.PodDisruptionBudget{
		ObjectMeta: metav1.ObjectMeta{Name: "guard"},
		Spec:       policyv1.PodDisruptionBudgetSpec{MinAvailable: &minAvailable, Selector: &metav1.LabelSelector{MatchLabels: labels}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		pdb, err := cp.Client.PolicyV1().PodDisruptionBudgets("default").Get(ctx, "guard", metav1.GetOptions{})
		return err == nil && pdb.Status.CurrentHealthy == 1 && pdb.Status.ObservedGeneration == pdb.Generation, nil
	})
	if err != nil {
		t.Fatalf("guarded pod never became healthy under its PDB: %v", err)
	}
}

func secretData(t *testing.T, cp *harness.ControlPlane, name string) map[string][]byte {
	t.Helper()
	return secretIn(t, cp, api.SystemNamespace, name).Data
}

func secretIn(t *testing.T, cp *harness.ControlPlane, ns, name string) *corev1.Secret {
	t.Helper()
	s, err := cp.Client.CoreV1().Secrets(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("secret %s/%s: %v", ns, name, err)
	}
	return s
}

func allocations(t *testing.T, cp *harness.ControlPlane) string {
	t.Helper()
	cm, err := cp.Client.CoreV1().ConfigMaps(api.SystemNamespace).Get(context.Background(), api.IPAMName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return cm.Data["allocations"]
}

func between(s, start, end string) string {
	_, after, ok := strings.Cut(s, start)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(after, end)
	return v
}

func TestExhaustedPool(t *testing.T) {
	ctx := context.Background()
	cp := startCluster(t)
	dir := t.TempDir()
	mustStage(t, cp.Kubeconfig, "init", "--hub-endpoint", "198.18.0.1", "--overlay-cidr", "10.23.0.0/29")
	for i := 1; i <= 5; i++ {
		mustStage(t, cp.Kubeconfig, "join", "tokyo", "--node", fmt.Sprintf("tokyo-%d", i), "-f", filepath.Join(dir, fmt.Sprintf("%d.sh", i)))
	}
	_, _, err := stage(t, cp.Kubeconfig, "join", "tokyo", "--node", "tokyo-6", "-f", filepath.Join(dir, "6.sh"))
	for _, want := range []string{"overlay address pool exhausted", "all 5 addresses of 10.23.0.0/29 are in use", "kubectl stage leave NODE", "with a larger overlay CIDR (--overlay-cidr)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error = %v, want it to contain %q", err, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "6.sh")); !os.IsNotExist(err) {
		t.Error("a join that found no address wrote a bundle")
	}
	secrets, err := cp.Client.CoreV1().Secrets(metav1.NamespaceSystem).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tokens := 0
	for _, s := range secrets.Items {
		if strings.HasPrefix(s.Name, "bootstrap-token-") {
			tokens++
		}
	}
	if tokens != 5 {
		t.Errorf("%d bootstrap tokens, want 5: the failed join left one behind", tokens)
	}
	if _, found, _ := siteStore(cp).Node(ctx, "tokyo-6"); found {
		t.Error("the failed join left a node record")
	}
}
