package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/secretfile"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// installWebhook installs the chart for a webhook served from this host and
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
	// The peers run in site namespaces, which do not reach this host's
	// loopback: the seed endpoint serves here (for curl), its URL is not
	// injected.
	seedsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	url := "https://127.0.0.1:" + strconv.Itoa(port)
	d.step("helm template stage charts/kubectl-stage -n %s --set webhook.url=%s | kubectl apply -f -", api.SystemNamespace, url)
	cert, key, err := d.cp.InstallChartForURL(ctx, url)
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(d.Dir, "webhook-tls")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := secretfile.Write(filepath.Join(certDir, name), data); err != nil {
			return nil, err
		}
	}
	log := filepath.Join(d.Dir, "stage-webhook.log")
	d.step("starting stage-webhook on %s (log: %s)", url, log)
	daemon, err := harness.StartDaemon("stage-webhook", d.bin.webhook, []string{
		"--kubeconfig=" + d.kubeconfig, "--host=127.0.0.1", "--port=" + strconv.Itoa(port), "--cert-dir=" + certDir,
		"--metrics-bind-address=0", "--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(healthPort),
		"--seeds-bind-address=127.0.0.1:" + strconv.Itoa(seedsPort),
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
