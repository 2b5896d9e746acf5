// Command stage-webhook serves the kubectl-stage mutating admission webhook.
package main

import (
	"flag"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubectl-stage/kubectl-stage/pkg/version"
	"github.com/kubectl-stage/kubectl-stage/webhook"
)

func main() {
	var o webhook.Options
	flag.StringVar(&o.Host, "host", "", "address to serve the webhook on (default: all)")
	flag.IntVar(&o.Port, "port", 9443, "HTTPS port of the webhook")
	flag.StringVar(&o.CertDir, "cert-dir", "/tls", "directory with tls.crt and tls.key (reloaded on change)")
	flag.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	flag.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&o.OnViewError, "on-view-error", webhook.OnViewErrorDeny, "when a pod's peers cannot be read: deny (refuse the pod, saying why) or warn (admit it without seeds, with a warning and the annotation kubectl-stage.io/seeds-injected)")
	flag.StringVar(&o.SeedsAddr, "seeds-bind-address", ":8082", "address of the seed endpoint, GET /seeds/NAMESPACE/APP (plain HTTP, read-only; 0 disables)")
	flag.StringVar(&o.SeedURL, "seed-url", "", "the seed endpoint's base URL as peers reach it (such as http://stage-seeds.kubectl-stage-system.svc:8082), injected into peers as STAGE_SEED_URL (empty: not injected)")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("stage-webhook")
	log.Info("starting", "version", version.Get().GitVersion, "port", o.Port, "certDir", o.CertDir)

	mgr, err := webhook.NewManager(ctrl.GetConfigOrDie(), o)
	if err != nil {
		log.Error(err, "setting up")
		os.Exit(1)
	}
	// SIGTERM ends in-flight requests, then exits (graceful shutdown).
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "serving")
		os.Exit(1)
	}
}
