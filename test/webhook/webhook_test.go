package webhook_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	stagewebhook "github.com/kubectl-stage/kubectl-stage/webhook"
)

var sites = []string{"frankfurt", "osaka", "tokyo"}

// cluster is a control plane with two nodes per site and the webhook
// running in the test process, registered with the API server.
type cluster struct {
	cp      *harness.ControlPlane
	nodeIPs map[string]string // node -> overlay IP
	site    map[string]string // node -> site
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	ctx := context.Background()
	c := &cluster{cp: harness.StartForTest(t, harness.All()), nodeIPs: map[string]string{}, site: map[string]string{}}
	host := 10
	for _, s := range sites {
		for i := 1; i <= 2; i++ {
			name := fmt.Sprintf("%s-%d", s, i)
			ip := fmt.Sprintf("10.23.0.%d", host)
			host++
			if _, err := c.cp.AddNode(ctx, harness.Node{Name: name, Site: s, InternalIP: ip}); err != nil {
				t.Fatal(err)
			}
			c.nodeIPs[name], c.site[name] = ip, s
		}
	}
	// The chart's own webhook configuration, RBAC and certificate, for the
	// webhook served here: what a user installs, not a copy that can drift.
	port := harness.FreePort(t)
	cert, key, err := c.cp.InstallChartForURL(ctx, fmt.Sprintf("https://127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	serveWebhook(t, c.cp, port, cert, key, stagewebhook.Options{})
	return c
}

// startWebhook runs the real webhook server with a certificate of its own
// on a free loopback port, for benchmarks that register it themselves, and
// returns its URL and CA.
func startWebhook(t testing.TB, cp *harness.ControlPlane) (string, []byte) {
	t.Helper()
	caPEM, certPEM, keyPEM := loopbackServingCert(t)
	port := harness.FreePort(t)
	serveWebhook(t, cp, port, certPEM, keyPEM, stagewebhook.Options{})
	return fmt.Sprintf("https://127.0.0.1:%d%s", port, stagewebhook.Path), caPEM
}

// loopbackServingCert is a serving certificate for 127.0.0.1 from a CA of
// its own.
func loopbackServingCert(t testing.TB) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	ca, err := pki.NewCA("stage-webhook-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serving, err := ca.Issue(pki.Request{CommonName: "stage-webhook", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err = serving.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	return ca.CertificatePEM(), serving.CertificatePEM(), keyPEM
}

// certDir is a directory holding tls.crt and tls.key, as the webhook reads them.
func certDir(t testing.TB, certPEM, keyPEM []byte) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveWebhook runs the real webhook server (TLS, caches, health) on port
// with the given certificate and the seed endpoint as o has it, and waits
// until it is ready.
func serveWebhook(t testing.TB, cp *harness.ControlPlane, port int, certPEM, keyPEM []byte, o stagewebhook.Options) {
	t.Helper()
	health := harness.FreePort(t)
	o.Host, o.Port, o.CertDir, o.MetricsAddr, o.HealthAddr = "127.0.0.1", port, certDir(t, certPEM, keyPEM), "0", "127.0.0.1:"+strconv.Itoa(health)
	mgr, err := stagewebhook.NewManager(cp.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook manager: %v", err)
		}
	})
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("webhook never became ready: %v", err)
	}
}

// registerWebhook installs, for benchmarks, a MutatingWebhookConfiguration
// named name, shaped like the chart's (Fail, no side effects, 5 s,
// IfNeeded), that sends url the pods with the labels selected.
func registerWebhook(t testing.TB, cp *harness.ControlPlane, name, url string, caPEM []byte, selected map[string]string) {
	t.Helper()
	cfg := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:                    name + ".bench.kubectl-stage.io",
			ClientConfig:            admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: caPEM},
			Rules:                   []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create}, Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			FailurePolicy:           ptr.To(admissionregistrationv1.Fail),
			SideEffects:             ptr.To(admissionregistrationv1.SideEffectClassNone),
			AdmissionReviewVersions: []string{"v1"},
			TimeoutSeconds:          ptr.To(int32(5)),
			ReinvocationPolicy:      ptr.To(admissionregistrationv1.IfNeededReinvocationPolicy),
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", api.SystemNamespace},
			}}},
			ObjectSelector: &metav1.LabelSelector{MatchLabels: selected},
		}},
	}
	if _, err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), cfg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestStatefulSetPeersAcrossSites(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	createNamespace(t, c.cp, "p2p", nil)
	labels := map[string]string{"app": "gossip", api.LabelInject: api.LabelInjectValue}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "gossip", Namespace: "p2p"},
		Spec: appsv1.StatefulSetSpec{
			Replicas: ptr.To(int32(3)), ServiceName: "gossip",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "gossip"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
					api.AnnotationPlacement: "one-per-site", api.AnnotationPort: "30303",
				}},
				// On the host network: the node's overlay IP reaches the peer.
				Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "node", Image: "example.invalid/gossip:v1", Ports: []corev1.ContainerPort{{ContainerPort: 30303}}}}},
			},
		},
	}
	if _, err := c.cp.Client.AppsV1().StatefulSets("p2p").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitRunning(t, c.cp, "p2p", "app=gossip", 3)

	usedSites := map[string]string{}
	addrOf := map[string]string{}
	for _, p := range pods {
		site := c.site[p.Spec.NodeName]
		if prev, dup := usedSites[site]; dup {
			t.Errorf("%s and %s both run at %s; one-per-site wants one each", prev, p.Name, site)
		}
		usedSites[site] = p.Name
		if p.Status.HostIP != c.nodeIPs[p.Spec.NodeName] {
			t.Errorf("%s: hostIP %s, want its node's overlay IP %s", p.Name, p.Status.HostIP, c.nodeIPs[p.Spec.NodeName])
		}
		addrOf[p.Name] = p.Status.HostIP + ":30303"
		if got := envValue(p, api.EnvSite); got != site {
			t.Errorf("%s: %s=%q, want %q", p.Name, api.EnvSite, got, site)
		}
		if ref := envRef(p, api.EnvAdvertiseIP); ref != "status.hostIP" {
			t.Errorf("%s: %s comes from %q, want status.hostIP", p.Name, api.EnvAdvertiseIP, ref)
		}
		if got := envValue(p, api.EnvAdvertiseAddr); got != "$(STAGE_ADVERTISE_IP):30303" {
			t.Errorf("%s: %s=%q", p.Name, api.EnvAdvertiseAddr, got)
		}
		affinity := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions
		if !slices.ContainsFunc(affinity, func(r corev1.NodeSelectorRequirement) bool {
			return r.Key == api.LabelSite && len(r.Values) == 1 && r.Values[0] == site
		}) {
			t.Errorf("%s: affinity %+v does not pin site %s", p.Name, affinity, site)
		}
	}
	if len(usedSites) != 3 {
		t.Errorf("pods run at %v, want all three sites", usedSites)
	}
	// OrderedReady: gossip-0 found nobody, gossip-1 found gossip-0,
	// gossip-2 found both, each at another site.
	want := map[string][]string{
		"gossip-0": nil,
		"gossip-1": {addrOf["gossip-0"]},
		"gossip-2": {addrOf["gossip-0"], addrOf["gossip-1"]},
	}
	for _, p := range pods {
		got := splitNonEmpty(envValue(p, api.EnvPeerSeeds))
		slices.Sort(got)
		w := slices.Clone(want[p.Name])
		slices.Sort(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s: seeds %v, want %v", p.Name, got, w)
		}
		if dns := envValue(p, api.EnvSeedDNS); dns != "gossip.p2p.svc.cluster.local" {
			t.Errorf("%s: seed DNS %q", p.Name, dns)
		}
	}
}

func TestDeploymentSpreadAndSafety(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	createNamespace(t, c.cp, "mesh", map[string]string{api.LabelInject: api.LabelInjectValue})
	createNamespace(t, c.cp, "plain", nil)

	labels := map[string]string{"app.kubernetes.io/name": "mesh"}
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "mesh", Namespace: "mesh"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(6)),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{api.AnnotationPort: "4001"}},
				Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "node", Image: "example.invalid/mesh:v1", Ports: []corev1.ContainerPort{{ContainerPort: 4001}}}}},
			},
		},
	}
	if _, err := c.cp.Client.AppsV1().Deployments("mesh").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	perSite := map[string]int{}
	for _, p := range waitRunning(t, c.cp, "mesh", "app.kubernetes.io/name=mesh", 6) {
		perSite[c.site[p.Spec.NodeName]]++
		if ref := envRef(p, api.EnvSite); ref != "metadata.labels['topology.kubernetes.io/zone']" {
			t.Errorf("%s: %s from %q", p.Name, api.EnvSite, ref)
		}
		// The API server copied the node's zone (= site) onto the pod at
		// binding, so the downward API gives the pod its site.
		if zone := p.Labels[api.LabelZone]; zone != c.site[p.Spec.NodeName] {
			t.Errorf("%s: pod label %s=%q, want its node's site %q", p.Name, api.LabelZone, zone, c.site[p.Spec.NodeName])
		}
	}
	for _, s := range sites {
		if perSite[s] != 2 {
			t.Errorf("pods per site %v, want 2 at each (topology spread on %s)", perSite, api.LabelSite)
		}
	}

	// Never touched: pods that did not opt in, and kube-system even when labelled.
	for _, ns := range []string{"plain", "kube-system"} {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bystander", Namespace: ns, Labels: map[string]string{"app": "x", api.LabelInject: api.LabelInjectValue}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/x"}}},
		}
		if ns == "plain" {
			delete(p.Labels, api.LabelInject)
		}
		got, err := c.cp.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.Containers[0].Env) != 0 || got.Spec.Affinity != nil {
			t.Errorf("pod in %s was mutated: %+v", ns, got.Spec)
		}
	}

	// A malformed annotation is refused with a message that says what to fix.
	bad := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "bad", Namespace: "mesh", Labels: map[string]string{"app": "mesh"}, Annotations: map[string]string{api.AnnotationSites: "mars"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "example.invalid/x"}}},
	}
	_, err := c.cp.Client.CoreV1().Pods("mesh").Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), `no node is at site "mars"`) {
		t.Errorf("error = %v, want the unknown site named", err)
	}
	bad.Annotations[api.AnnotationSites] = "9"
	_, err = c.cp.Client.CoreV1().Pods("mesh").Create(ctx, bad, metav1.CreateOptions{})
	if err == nil || !strings.Contains(err.Error(), "asks for 9 sites but the cluster has 3") {
		t.Errorf("error = %v, want the site count explained", err)
	}
}

func createNamespace(t testing.TB, cp *harness.ControlPlane, name string, labels map[string]string) {
	t.Helper()
	if _, err := cp.Client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitRunning(t *testing.T, cp *harness.ControlPlane, ns, selector string, n int) []corev1.Pod {
	t.Helper()
	var pods []corev1.Pod
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		list, err := cp.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
		if err != nil {
			return false, err
		}
		pods = list.Items
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && p.Status.HostIP != "" {
				running++
			}
		}
		return running == n && len(pods) == n, nil
	})
	if err != nil {
		t.Fatalf("%d pods of %s in %s never ran (%d seen): %v", n, selector, ns, len(pods), err)
	}
	return pods
}

func envValue(p corev1.Pod, name string) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func envRef(p corev1.Pod, name string) string {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			return e.ValueFrom.FieldRef.FieldPath
		}
	}
	return ""
}

func splitNonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}
