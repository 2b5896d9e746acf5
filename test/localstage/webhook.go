package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/secretfile"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// installWebhook renders the chart with helm, applies it with kubectl, and
// runs the webhook binary here with the certificate the chart generated.
func (d *demo) installWebhook(ctx context.Context) (stop func(), err error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	healthPort, err := freePort()
	if err != nil {
		return nil, err
	}
	url := "https://127.0.0.1:" + strconv.Itoa(port)
	d.step("helm template stage charts/kubectl-stage -n %s --set webhook.url=%s | kubectl apply -f -", api.SystemNamespace, url)
	render := exec.CommandContext(ctx, d.cp.Tools.Helm, "template", "stage", filepath.Join(harness.RepoRoot(), "charts", "kubectl-stage"),
		"--namespace", api.SystemNamespace, "--set", "webhook.url="+url)
	manifests, err := render.Output()
	if err != nil {
		return nil, fmt.Errorf("helm template: %v", err)
	}
	if err := d.kubectl(ctx, bytes.NewReader(manifests), "apply", "-f", "-"); err != nil {
		return nil, err
	}

	secret, err := d.cp.Client.CoreV1().Secrets(api.SystemNamespace).Get(ctx, "stage-kubectl-stage-webhook-tls", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(d.Dir, "webhook-tls")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	for _, name := range []string{"tls.crt", "tls.key"} {
		if err := secretfile.Write(filepath.Join(certDir, name), secret.Data[name]); err != nil {
			return nil, err
		}
	}
	log := filepath.Join(d.Dir, "stage-webhook.log")
	d.step("starting stage-webhook on %s (log: %s)", url, log)
	daemon, err := harness.StartDaemon("stage-webhook", d.bin.webhook, []string{
		"--kubeconfig=" + d.kubeconfig, "--host=127.0.0.1", "--port=" + strconv.Itoa(port), "--cert-dir=" + certDir,
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(healthPort),
	}, log)
	if err != nil {
		return nil, err
	}
	stop = func() { daemon.Stop(); _ = os.RemoveAll(certDir) }
	ready := fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort)
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := daemon.WaitHealthy(waitCtx, ready); err != nil {
		stop()
		return nil, fmt.Errorf("the webhook did not become ready (log: %s): %w", log, err)
	}
	fmt.Fprintf(d.Out, "    webhook ready (%s)\n", ready)
	return stop, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
