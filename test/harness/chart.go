package harness

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	render := exec.CommandContext(ctx, cp.Tools.Helm, "template", ChartRelease, filepath.Join(RepoRoot(), "charts", "kubectl-stage"),
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
