package harness

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// ChartRelease is the release name the tests and the demo install the chart as.
const ChartRelease = "stage"

// InstallChartForURL installs charts/kubectl-stage as a user would for a
// webhook served from outside the cluster at url: `helm template
// --set webhook.url=URL | kubectl apply -f -` into the system namespace. The
// webhook configuration, RBAC and TLS Secret are the chart's own, so tests
// cannot drift from what users get. It returns the serving certificate and
// key the chart generated, for the webhook to serve with.
func (cp *ControlPlane) InstallChartForURL(ctx context.Context, url string) (certPEM, keyPEM []byte, err error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: api.SystemNamespace}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, nil, err
	}
	render := exec.CommandContext(ctx, cp.Tools.Helm, "template", ChartRelease, ChartDir(),
		"--namespace", api.SystemNamespace, "--set", "webhook.url="+url)
	var renderErr bytes.Buffer
	render.Stderr = &renderErr
	manifests, err := render.Output()
	if err != nil {
		return nil, nil, fmt.Errorf("helm template: %v: %s", err, renderErr.String())
	}
	apply := exec.CommandContext(ctx, cp.Tools.Kubectl, "--kubeconfig", cp.Kubeconfig, "apply", "-f", "-")
	apply.Stdin = bytes.NewReader(manifests)
	if out, err := apply.CombinedOutput(); err != nil {
		return nil, nil, fmt.Errorf("kubectl apply of the rendered chart: %v: %s", err, out)
	}
	secret, err := cp.Client.CoreV1().Secrets(api.SystemNamespace).Get(ctx, ChartRelease+"-kubectl-stage-webhook-tls", metav1.GetOptions{})
	if err != nil {
		return nil, nil, err
	}
	return secret.Data[corev1.TLSCertKey], secret.Data[corev1.TLSPrivateKeyKey], nil
}

// ChartDir is the chart's folder in the checkout.
func ChartDir() string { return filepath.Join(RepoRoot(), "charts", "kubectl-stage") }

// Helm runs helm with args and returns what it printed, failing t if it
// fails. Its cache, configuration and data live in temporary folders of t,
// so no setting of the machine's user leaks into the test.
func Helm(t testing.TB, args ...string) string {
	t.Helper()
	tools, err := FindTools()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tools.Helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// RenderChart runs `helm template` of the chart as ChartRelease into
// namespace with the --set values, and returns the manifest and its objects
// by "Kind/name".
func RenderChart(t testing.TB, namespace string, set ...string) (string, map[string]*unstructured.Unstructured) {
	t.Helper()
	args := []string{"template", ChartRelease, ChartDir(), "--namespace", namespace}
	for _, s := range set {
		args = append(args, "--set", s)
	}
	manifest := Helm(t, args...)
	objects := map[string]*unstructured.Unstructured{}
	decoder := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := decoder.Decode(&u.Object); err != nil {
			break
		}
		if len(u.Object) == 0 {
			continue
		}
		objects[u.GetKind()+"/"+u.GetName()] = u
	}
	return manifest, objects
}
