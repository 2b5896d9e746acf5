package chart

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const namespace = "kubectl-stage-system"

var chartDir = harness.ChartDir()

func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	if u == nil {
		t.Fatalf("object missing from the rendered chart")
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestChartLints(t *testing.T) {
	out := harness.Helm(t, "lint", "--strict", chartDir)
	if !strings.Contains(out, "0 chart(s) failed") {
		t.Errorf("helm lint:\n%s", out)
	}
}

func TestChartDefaults(t *testing.T) {
	_, objs := harness.RenderChart(t, namespace)
	for _, key := range []string{"ServiceAccount/stage-kubectl-stage-webhook", "ClusterRole/stage-kubectl-stage-webhook", "ClusterRoleBinding/stage-kubectl-stage-webhook",
		"Service/stage-kubectl-stage-webhook", "Deployment/stage-kubectl-stage-webhook", "PodDisruptionBudget/stage-kubectl-stage-webhook",
		"Secret/stage-kubectl-stage-webhook-tls", "MutatingWebhookConfiguration/stage-kubectl-stage"} {
		if objs[key] == nil {
			t.Errorf("%s is not rendered", key)
		}
	}

	deploy := convert[appsv1.Deployment](t, objs["Deployment/stage-kubectl-stage-webhook"])
	pod := deploy.Spec.Template.Spec
	c := pod.Containers[0]
	if *deploy.Spec.Replicas != 2 || pod.Affinity.PodAntiAffinity == nil {
		t.Errorf("replicas %d, anti-affinity %v", *deploy.Spec.Replicas, pod.Affinity)
	}
	if !*pod.SecurityContext.RunAsNonRoot || !*c.SecurityContext.ReadOnlyRootFilesystem || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Error("the webhook must run as non-root with a read-only root filesystem and no privilege escalation")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Error("no resource requests")
	}

	role := convert[struct {
		Rules []struct{ Verbs []string } `json:"rules"`
	}](t, objs["ClusterRole/stage-kubectl-stage-webhook"])
	for _, r := range role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("the webhook's role may %s; it should only read", v)
			}
		}
	}

	mwc := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs["MutatingWebhookConfiguration/stage-kubectl-stage"])
	secret := convert[corev1.Secret](t, objs["Secret/stage-kubectl-stage-webhook-tls"])
	serving, err := pki.ParseCertificate(decode(t, secret.Data["tls.crt"]))
	if err != nil {
		t.Fatal(err)
	}
	for _, hook := range mwc.Webhooks {
		if *hook.FailurePolicy != admissionregistrationv1.Fail || *hook.SideEffects != admissionregistrationv1.SideEffectClassNone || *hook.TimeoutSeconds != 5 {
			t.Errorf("%s: failurePolicy %s sideEffects %s timeout %d", hook.Name, *hook.FailurePolicy, *hook.SideEffects, *hook.TimeoutSeconds)
		}
		excluded := hook.NamespaceSelector.MatchExpressions[0]
		if excluded.Operator != metav1.LabelSelectorOpNotIn || strings.Join(excluded.Values, ",") != "kube-system,"+namespace {
			t.Errorf("%s: namespace exclusion %+v", hook.Name, excluded)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(hook.ClientConfig.CABundle) {
			t.Fatalf("%s: caBundle is not a PEM certificate", hook.Name)
		}
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: "stage-kubectl-stage-webhook." + namespace + ".svc"}); err != nil {
			t.Errorf("%s: the serving certificate does not verify against the caBundle for the Service name: %v", hook.Name, err)
		}
	}
	if mwc.Webhooks[0].ObjectSelector.MatchLabels["kubectl-stage.io/inject"] != "enabled" || mwc.Webhooks[1].NamespaceSelector.MatchLabels["kubectl-stage.io/inject"] != "enabled" {
		t.Error("opt-in selectors missing")
	}
}

func TestChartOptions(t *testing.T) {
	_, single := harness.RenderChart(t, namespace, "replicaCount=1")
	if single["PodDisruptionBudget/stage-kubectl-stage-webhook"] != nil {
		t.Error("a PodDisruptionBudget with a single replica would block every drain")
	}
	_, cm := harness.RenderChart(t, namespace, "certificates.certManager.enabled=true")
	if cm["Secret/stage-kubectl-stage-webhook-tls"] != nil || cm["Certificate/stage-kubectl-stage-webhook"] == nil || cm["Issuer/stage-kubectl-stage-webhook-ca"] == nil {
		t.Error("cert-manager mode renders the wrong certificate objects")
	}
	if got := cm["MutatingWebhookConfiguration/stage-kubectl-stage"].GetAnnotations()["cert-manager.io/inject-ca-from"]; got != namespace+"/stage-kubectl-stage-webhook" {
		t.Errorf("inject-ca-from = %q", got)
	}

	// Served from outside the cluster: the hooks call the URL, whose host
	// the certificate covers, and nothing is deployed in the cluster.
	_, ext := harness.RenderChart(t, namespace, "webhook.url=https://127.0.0.1:9443")
	for _, kind := range []string{"Deployment", "Service", "PodDisruptionBudget"} {
		if ext[kind+"/stage-kubectl-stage-webhook"] != nil {
			t.Errorf("url mode renders a %s", kind)
		}
	}
	hooks := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, ext["MutatingWebhookConfiguration/stage-kubectl-stage"])
	secret := convert[corev1.Secret](t, ext["Secret/stage-kubectl-stage-webhook-tls"])
	block, _ := pem.Decode(secret.Data["tls.crt"])
	if block == nil {
		t.Fatal("no serving certificate")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, hook := range hooks.Webhooks {
		if hook.ClientConfig.URL == nil || *hook.ClientConfig.URL != "https://127.0.0.1:9443/mutate-v1-pod" || hook.ClientConfig.Service != nil {
			t.Errorf("hook %s client config %+v", hook.Name, hook.ClientConfig)
		}
	}
	if err := cert.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("the certificate does not cover the URL's host: %v", err)
	}

	// A cluster without a pod network or kube-proxy at the sites: the
	// webhook on the node's network, talking to the API server directly.
	_, direct := harness.RenderChart(t, namespace, "hostNetwork=true", "k8sServiceHost=10.23.0.1")
	pod := convert[appsv1.Deployment](t, direct["Deployment/stage-kubectl-stage-webhook"]).Spec.Template.Spec
	wantEnv := []corev1.EnvVar{{Name: "KUBERNETES_SERVICE_HOST", Value: "10.23.0.1"}, {Name: "KUBERNETES_SERVICE_PORT", Value: "6443"}}
	if !pod.HostNetwork || pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet || !slices.Equal(pod.Containers[0].Env, wantEnv) {
		t.Errorf("hostNetwork %v, dnsPolicy %s, env %+v; want true, ClusterFirstWithHostNet, %+v", pod.HostNetwork, pod.DNSPolicy, pod.Containers[0].Env, wantEnv)
	}
	_, usual := harness.RenderChart(t, namespace)
	pod = convert[appsv1.Deployment](t, usual["Deployment/stage-kubectl-stage-webhook"]).Spec.Template.Spec
	if pod.HostNetwork || pod.DNSPolicy != "" || pod.Containers[0].Env != nil {
		t.Errorf("by default the webhook uses the pod network and the kubernetes Service: hostNetwork %v, dnsPolicy %q, env %+v", pod.HostNetwork, pod.DNSPolicy, pod.Containers[0].Env)
	}
}

// The seed endpoint: its own port and Service, its URL given to the
// webhook to inject; off, neither.
func TestChartSeeds(t *testing.T) {
	args := func(objs map[string]*unstructured.Unstructured) []string {
		return convert[appsv1.Deployment](t, objs["Deployment/stage-kubectl-stage-webhook"]).Spec.Template.Spec.Containers[0].Args
	}
	_, objs := harness.RenderChart(t, namespace)
	svc := convert[corev1.Service](t, objs["Service/stage-kubectl-stage-seeds"])
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8082 || svc.Spec.Ports[0].TargetPort.String() != "seeds" || svc.Spec.Selector["app.kubernetes.io/component"] != "webhook" {
		t.Errorf("seeds Service: %+v", svc.Spec)
	}
	for _, want := range []string{"--seeds-bind-address=:8082", "--seed-url=http://stage-kubectl-stage-seeds." + namespace + ".svc:8082", "--on-view-error=deny"} {
		if !slices.Contains(args(objs), want) {
			t.Errorf("webhook args %v lack %s", args(objs), want)
		}
	}
	webhookSvc := convert[corev1.Service](t, objs["Service/stage-kubectl-stage-webhook"])
	for _, p := range webhookSvc.Spec.Ports {
		if p.Name == "seeds" {
			t.Error("the seed endpoint is on the webhook's Service, which the API server calls")
		}
	}
	_, own := harness.RenderChart(t, namespace, "seeds.url=http://10.23.0.1:8082/", "webhook.onViewError=warn")
	for _, want := range []string{"--seed-url=http://10.23.0.1:8082", "--on-view-error=warn"} {
		if !slices.Contains(args(own), want) {
			t.Errorf("webhook args %v lack %s", args(own), want)
		}
	}
	_, off := harness.RenderChart(t, namespace, "seeds.enabled=false")
	if off["Service/stage-kubectl-stage-seeds"] != nil || !slices.Contains(args(off), "--seeds-bind-address=0") ||
		slices.ContainsFunc(args(off), func(a string) bool { return strings.HasPrefix(a, "--seed-url") }) {
		t.Errorf("seeds off: Service rendered %v, args %v", off["Service/stage-kubectl-stage-seeds"] != nil, args(off))
	}
}

// TestChartAppliesToAPIServer applies the rendered chart to a real API
// server: what a cluster accepts, with its validation and defaulting.
func TestChartAppliesToAPIServer(t *testing.T) {
	ctx := context.Background()
	cp := harness.StartForTest(t, harness.Options{})
	// With the opt-in node agent too: the API server validates its
	// DaemonSet and RBAC as well.
	manifest, objs := harness.RenderChart(t, namespace, "netAgent.enabled=true")
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cp.Tools.Kubectl, "--kubeconfig", cp.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = bytes.NewBufferString(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply of the rendered chart: %v\n%s", err, out)
	}
	mwc, err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, "stage-kubectl-stage", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mwc.Webhooks) != 2 || *mwc.Webhooks[0].ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy {
		t.Errorf("stored webhook configuration: %+v", mwc.Webhooks)
	}
	if _, err := cp.Client.PolicyV1().PodDisruptionBudgets(namespace).Get(ctx, "stage-kubectl-stage-webhook", metav1.GetOptions{}); err != nil {
		t.Error(err)
	}
	// Re-applying is a no-op: the chart is declarative, so no object it
	// renders may be written again (kubectl may still send a PDB's selector,
	// whose patch strategy is replace, so compare resourceVersions rather
	// than kubectl's words).
	before := resourceVersions(t, cp, manifest)
	if len(before) != len(objs) {
		t.Fatalf("the cluster holds %d of the %d objects the chart renders: %v", len(before), len(objs), before)
	}
	again := exec.Command(cp.Tools.Kubectl, "--kubeconfig", cp.Kubeconfig, "apply", "-f", "-")
	again.Stdin = bytes.NewBufferString(manifest)
	out, err := again.CombinedOutput()
	if err != nil {
		t.Fatalf("re-apply: %v\n%s", err, out)
	}
	after := resourceVersions(t, cp, manifest)
	for key, rv := range before {
		if after[key] != rv {
			t.Errorf("re-apply rewrote %s (resourceVersion %s -> %s); kubectl said:\n%s", key, rv, after[key], out)
		}
	}

	// A single replica with failurePolicy Fail blocks opted-in pods while it
	// restarts: the install notes say so.
	// Another release name, so that its objects do not collide with the
	// ones applied above.
	notes := harness.Helm(t, "install", "notes", chartDir, "--dry-run", "--namespace", namespace, "--kubeconfig", cp.Kubeconfig, "--set", "replicaCount=1")
	if !strings.Contains(notes, "WARNING: one webhook replica with failurePolicy Fail") {
		t.Errorf("the notes of a single-replica install do not warn:\n%s", notes)
	}
	notes = harness.Helm(t, "install", "notes", chartDir, "--dry-run", "--namespace", namespace, "--kubeconfig", cp.Kubeconfig)
	if strings.Contains(notes, "WARNING") {
		t.Errorf("the notes of a default install warn:\n%s", notes)
	}
	checkNetAgentMayPatchOnlyItsNode(t, ctx, cp)
}

// resourceVersions maps each object of manifest, as stored, to its resourceVersion.
func resourceVersions(t *testing.T, cp *harness.ControlPlane, manifest string) map[string]string {
	t.Helper()
	cmd := exec.Command(cp.Tools.Kubectl, "--kubeconfig", cp.Kubeconfig, "get", "-f", "-",
		"-o", `jsonpath={range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}`)
	cmd.Stdin = bytes.NewBufferString(manifest)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("kubectl get -f: %v", err)
	}
	versions := map[string]string{}
	for _, line := range strings.Fields(string(out)) {
		key, rv, _ := strings.Cut(line, "=")
		versions[key] = rv
	}
	return versions
}

// TestChartCombinations renders and lints every combination of certificate
// mode, webhook URL and replica count, and checks what each must render.
func TestChartCombinations(t *testing.T) {
	svcName := "stage-kubectl-stage-webhook." + namespace + ".svc"
	for _, certManager := range []bool{false, true} {
		for _, url := range []string{"", "https://127.0.0.1:9443", "https://stage.example.org:9443"} {
			for _, replicas := range []int{1, 2} {
				set := []string{fmt.Sprintf("certificates.certManager.enabled=%t", certManager), "webhook.url=" + url, fmt.Sprintf("replicaCount=%d", replicas)}
				t.Run(strings.Join(set, ","), func(t *testing.T) {
					out := harness.Helm(t, "lint", "--strict", chartDir, "--set", strings.Join(set, ","))
					if !strings.Contains(out, "0 chart(s) failed") {
						t.Errorf("helm lint:\n%s", out)
					}
					_, objs := harness.RenderChart(t, namespace, set...)
					inCluster := url == ""
					for _, kind := range []string{"Deployment", "Service"} {
						if got := objs[kind+"/stage-kubectl-stage-webhook"] != nil; got != inCluster {
							t.Errorf("%s rendered: %t, want %t", kind, got, inCluster)
						}
					}
					if got, want := objs["PodDisruptionBudget/stage-kubectl-stage-webhook"] != nil, inCluster && replicas > 1; got != want {
						t.Errorf("PodDisruptionBudget rendered: %t, want %t", got, want)
					}
					if inCluster {
						deploy := convert[appsv1.Deployment](t, objs["Deployment/stage-kubectl-stage-webhook"])
						if int(*deploy.Spec.Replicas) != replicas {
							t.Errorf("replicas %d, want %d", *deploy.Spec.Replicas, replicas)
						}
					}
					hosts := []string{svcName}
					if url != "" {
						hosts = append(hosts, strings.TrimSuffix(strings.TrimPrefix(url, "https://"), ":9443"))
					}
					if certManager {
						checkCertManagerNames(t, objs, hosts)
					} else {
						checkGeneratedCertificate(t, objs, hosts)
					}
				})
			}
		}
	}
}

// checkCertManagerNames asserts the cert-manager Certificate covers hosts.
func checkCertManagerNames(t *testing.T, objs map[string]*unstructured.Unstructured, hosts []string) {
	t.Helper()
	if objs["Secret/stage-kubectl-stage-webhook-tls"] != nil {
		t.Error("cert-manager mode also renders a generated Secret")
	}
	cert := objs["Certificate/stage-kubectl-stage-webhook"]
	if cert == nil {
		t.Fatal("no Certificate")
	}
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	ips, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "ipAddresses")
	for _, h := range hosts {
		if !slices.Contains(dns, h) && !slices.Contains(ips, h) {
			t.Errorf("the Certificate covers %v and %v, not %s", dns, ips, h)
		}
	}
}

// checkGeneratedCertificate asserts the generated serving certificate
// verifies against the webhook configuration's caBundle for every host.
func checkGeneratedCertificate(t *testing.T, objs map[string]*unstructured.Unstructured, hosts []string) {
	t.Helper()
	secret := convert[corev1.Secret](t, objs["Secret/stage-kubectl-stage-webhook-tls"])
	serving, err := pki.ParseCertificate(decode(t, secret.Data["tls.crt"]))
	if err != nil {
		t.Fatal(err)
	}
	mwc := convert[admissionregistrationv1.MutatingWebhookConfiguration](t, objs["MutatingWebhookConfiguration/stage-kubectl-stage"])
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle) {
		t.Fatal("caBundle is not a PEM certificate")
	}
	for _, h := range hosts {
		if _, err := serving.Verify(x509.VerifyOptions{Roots: roots, DNSName: h}); err != nil {
			t.Errorf("the serving certificate does not verify for %s: %v", h, err)
		}
	}
}

// TestChartRejectsBadValues: the schema and the chart's own checks refuse
// bad values before anything reaches the API server, in Helm's words.
func TestChartRejectsBadValues(t *testing.T) {
	tools, err := harness.FindTools()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ set, want string }{
		{"replicaCount=0", "at '/replicaCount': minimum: got 0, want 1"},
		{"webhook.timeoutSeconds=31", "at '/webhook/timeoutSeconds': maximum: got 31, want 30"},
		{"webhook.failurePolicy=Sometimes", "at '/webhook/failurePolicy': value must be one of 'Fail', 'Ignore'"},
		{"image.pullPolicy=Maybe", "at '/image/pullPolicy': value must be one of 'Always', 'IfNotPresent', 'Never'"},
		{"webhook.url=http://127.0.0.1:9443", "at '/webhook/url': 'http://127.0.0.1:9443' does not match pattern"},
		{"webhook.port=0", "at '/webhook/port': minimum: got 0, want 1"},
		{"replicaCuont=2", "additional properties 'replicaCuont' not allowed"},
		{"metrics.port=9443", "metrics.port and webhook.port are both 9443: give each endpoint its own port"},
		{"serviceAccount.create=false", "serviceAccount.name is required when serviceAccount.create is false"},
		{"k8sServiceHost=https://10.23.0.1", "at '/k8sServiceHost': 'https://10.23.0.1' does not match pattern"},
		{"podDisruptionBudget.maxUnavailable=1", "podDisruptionBudget: set minAvailable or maxUnavailable, not both"},
		{"webhook.onViewError=maybe", "at '/webhook/onViewError': value must be one of 'deny', 'warn'"},
		{"seeds.port=8081", "health.port and seeds.port are both 8081: give each endpoint its own port"},
		{"seeds.url=http://10.23.0.1:8082/seeds", "at '/seeds/url': 'http://10.23.0.1:8082/seeds' does not match pattern"},
		{"netAgent.enabled=true,hostNetwork=true,netAgent.metricsPort=8081", "health.port and netAgent.metricsPort are both 8081: give each endpoint its own port"},
		{"netAgent.probePeers=0", "at '/netAgent/probePeers': minimum: got 0, want 1"},
		{"netAgent.interface=stage 0", "at '/netAgent/interface': 'stage 0' does not match pattern"},
		{"netAgent.probeInterval=1sec", "at '/netAgent/probeInterval': '1sec' does not match pattern"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			out, err := exec.Command(tools.Helm, "template", "stage", chartDir, "--set", tc.set).CombinedOutput()
			if err == nil {
				t.Fatalf("helm template accepted %s", tc.set)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Errorf("helm template --set %s:\n%s\nwant the message %q", tc.set, out, tc.want)
			}
		})
	}
}

func decode(t *testing.T, b []byte) []byte {
	t.Helper()
	// Secret data from unstructured conversion is already base64-decoded
	// bytes; tolerate both.
	if bytes.HasPrefix(b, []byte("-----BEGIN")) {
		return b
	}
	out, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The in-cluster rollout runner is opt-in; on, it runs the controller
// image built with the webhook's, with exactly the permissions a rollout
// uses.
func TestChartRolloutController(t *testing.T) {
	_, off := harness.RenderChart(t, namespace)
	for key := range off {
		if strings.Contains(key, "-rollout") {
			t.Errorf("the rollout controller is opt-in, but the defaults render %s", key)
		}
	}
	_, on := harness.RenderChart(t, namespace, "rolloutController.enabled=true", "rolloutController.leaseDuration=20s")
	deploy := convert[appsv1.Deployment](t, on["Deployment/stage-kubectl-stage-rollout"])
	c := deploy.Spec.Template.Spec.Containers[0]
	if c.Image != "ghcr.io/kubectl-stage/stage-rollout-controller:v0.1.0" || !slices.Contains(c.Args, "--lease-duration=20s") ||
		deploy.Spec.Template.Spec.ServiceAccountName != "stage-kubectl-stage-rollout" || *deploy.Spec.Replicas != 2 {
		t.Errorf("controller deployment: image %s args %v serviceAccount %s replicas %d", c.Image, c.Args, deploy.Spec.Template.Spec.ServiceAccountName, *deploy.Spec.Replicas)
	}
	role := convert[rbacv1.ClusterRole](t, on["ClusterRole/stage-kubectl-stage-rollout"])
	var rules []string
	for _, r := range role.Rules {
		rules = append(rules, fmt.Sprintf("%s %s %s", strings.Join(r.APIGroups, ","), strings.Join(r.Resources, ","), strings.Join(r.Verbs, ",")))
	}
	want := []string{
		"apps deployments,statefulsets,daemonsets get,list,watch,update",
		"apps deployments create",
		"apps replicasets list",
		" pods list,watch,delete,patch",
		" pods/proxy get",
		" nodes list,watch",
		" events list",
		"coordination.k8s.io leases get,create,update",
	}
	if !slices.Equal(rules, want) {
		t.Errorf("controller ClusterRole rules:\n%s\nwant\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}
	binding := convert[rbacv1.ClusterRoleBinding](t, on["ClusterRoleBinding/stage-kubectl-stage-rollout"])
	if binding.RoleRef.Name != role.Name || binding.Subjects[0].Name != "stage-kubectl-stage-rollout" || on["ServiceAccount/stage-kubectl-stage-rollout"] == nil {
		t.Errorf("binding %+v", binding)
	}
}

// The node agent's DaemonSet is opt-in; on, it runs on enrolled nodes only,
// on their network, as root with NET_ADMIN as its only capability, hands
// nothing to the mesh, and may read ConfigMaps of the staging namespace and
// patch Nodes, nothing else.
func TestChartNetAgent(t *testing.T) {
	_, off := harness.RenderChart(t, namespace)
	for key := range off {
		if strings.Contains(key, "net-agent") {
			t.Errorf("the node agent is opt-in, but the defaults render %s", key)
		}
	}
	const name = "stage-kubectl-stage-net-agent"
	_, on := harness.RenderChart(t, namespace, "netAgent.enabled=true", "k8sServiceHost=10.23.0.1", "netAgent.probePeers=20")
	ds := convert[appsv1.DaemonSet](t, on["DaemonSet/"+name])
	pod := ds.Spec.Template.Spec
	c := pod.Containers[0]
	wantArgs := []string{"--node=$(NODE_NAME)", "--mesh=false", "--net-conditions-priority=preferred", "--lock-dir=/run/kubectl-stage",
		"--interface=stage0", "--probe-interval=1s", "--probe-peers=20", "--publish-every=5s", "--metrics-addr=$(POD_IP):9101"}
	if c.Image != "ghcr.io/kubectl-stage/kubectl-stage-agent:v0.1.0" || !slices.Equal(c.Args, wantArgs) {
		t.Errorf("agent container: image %s args %q, want args %q", c.Image, c.Args, wantArgs)
	}
	sc := c.SecurityContext
	if !pod.HostNetwork || pod.ServiceAccountName != name || sc == nil || *sc.RunAsUser != 0 || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem ||
		fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" || fmt.Sprint(sc.Capabilities.Add) != "[NET_ADMIN]" || sc.Privileged != nil {
		t.Errorf("agent pod: hostNetwork %v serviceAccount %s securityContext %+v", pod.HostNetwork, pod.ServiceAccountName, sc)
	}
	terms := pod.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 1 || fmt.Sprint(terms[0].MatchExpressions) != "[{kubectl-stage.io/site Exists []}]" ||
		len(pod.Tolerations) != 1 || pod.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("agent placement: affinity %+v tolerations %+v", terms, pod.Tolerations)
	}
	if v := pod.Volumes[0].HostPath; v == nil || v.Path != "/run/kubectl-stage" || c.VolumeMounts[0].MountPath != "/run/kubectl-stage" {
		t.Errorf("the lock directory: volumes %+v mounts %+v", pod.Volumes, c.VolumeMounts)
	}
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if e.ValueFrom != nil {
			env[e.Name] = e.ValueFrom.FieldRef.FieldPath
		}
	}
	if env["NODE_NAME"] != "spec.nodeName" || env["POD_IP"] != "status.podIP" || env["POD_NAME"] != "metadata.name" || env["KUBERNETES_SERVICE_HOST"] != "10.23.0.1" {
		t.Errorf("agent env %v", env)
	}
	role := convert[rbacv1.Role](t, on["Role/"+name])
	cluster := convert[rbacv1.ClusterRole](t, on["ClusterRole/"+name])
	if role.Namespace != "kubectl-stage-system" || fmt.Sprint(role.Rules) != fmt.Sprint([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}}) ||
		fmt.Sprint(cluster.Rules) != fmt.Sprint([]rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"patch"}}}) {
		t.Errorf("agent permissions: Role %s/%s %+v, ClusterRole %+v", role.Namespace, role.Name, role.Rules, cluster.Rules)
	}
	for _, key := range []string{"RoleBinding/" + name, "ClusterRoleBinding/" + name, "ServiceAccount/" + name} {
		if on[key] == nil {
			t.Errorf("%s is not rendered", key)
		}
	}
}

// The monitors are prometheus-operator's (off by default): the webhook's
// ServiceMonitor, and with the node agent its PodMonitor, both with the
// labels a Prometheus selects them by.
func TestChartMonitors(t *testing.T) {
	_, off := harness.RenderChart(t, namespace, "netAgent.enabled=true")
	for key := range off {
		if strings.HasPrefix(key, "ServiceMonitor/") || strings.HasPrefix(key, "PodMonitor/") {
			t.Errorf("monitors are opt-in, but the defaults render %s", key)
		}
	}
	_, on := harness.RenderChart(t, namespace, "netAgent.enabled=true", "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prom")
	for key, want := range map[string]string{
		"ServiceMonitor/stage-kubectl-stage-webhook": `{"endpoints":[{"interval":"30s","path":"/metrics","port":"metrics","scrapeTimeout":"10s"}],` +
			`"namespaceSelector":{"matchNames":["kubectl-stage-system"]},"selector":{"matchLabels":{"app.kubernetes.io/component":"webhook","app.kubernetes.io/instance":"stage","app.kubernetes.io/name":"kubectl-stage"}}}`,
		"PodMonitor/stage-kubectl-stage-net-agent": `{"namespaceSelector":{"matchNames":["kubectl-stage-system"]},"podMetricsEndpoints":[{"interval":"30s","path":"/metrics","port":"metrics","scrapeTimeout":"10s"}],` +
			`"selector":{"matchLabels":{"app.kubernetes.io/component":"net-agent","app.kubernetes.io/instance":"stage","app.kubernetes.io/name":"kubectl-stage"}}}`,
	} {
		monitor := on[key]
		if monitor == nil {
			t.Errorf("%s is not rendered", key)
			continue
		}
		spec, err := json.Marshal(monitor.Object["spec"])
		if err != nil {
			t.Fatal(err)
		}
		if string(spec) != want || monitor.GetLabels()["release"] != "prom" {
			t.Errorf("%s: spec %s labels %v\nwant spec %s and the label release=prom", key, spec, monitor.GetLabels(), want)
		}
	}
}
