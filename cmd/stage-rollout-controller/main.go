// Command stage-rollout-controller is the in-cluster rollout runner: it
// drives every kubectl-stage rollout that no live runner holds (started
// with --detach, or whose CLI stopped), one per-rollout lease at a time.
package main

import (
	"flag"
	"os"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/kubectl-stage/kubectl-stage/pkg/rolloutrunner"
	"github.com/kubectl-stage/kubectl-stage/pkg/runlease"
	"github.com/kubectl-stage/kubectl-stage/pkg/version"
)

func main() {
	var metricsAddr, healthAddr, identity string
	var leaseDuration time.Duration
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Prometheus metrics address (0 disables)")
	flag.StringVar(&healthAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&identity, "identity", os.Getenv("POD_NAME"), "this replica's name on the rollout leases it holds (default: $POD_NAME, else the host name)")
	flag.DurationVar(&leaseDuration, "lease-duration", runlease.DefaultDuration, "how long a rollout's lease outlives a replica that died holding it")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("stage-rollout-controller")
	if identity == "" {
		host, err := os.Hostname()
		if err != nil {
			log.Error(err, "naming this replica: set --identity")
			os.Exit(1)
		}
		identity = host
	}
	identity = "rollout controller " + identity
	log.Info("starting", "version", version.Get().GitVersion, "identity", identity)

	cfg := ctrl.GetConfigOrDie()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		log.Error(err, "setting up")
		os.Exit(1)
	}
	// No manager-wide leader election: every replica runs, and each
	// rollout's own lease decides which one drives it.
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: healthAddr,
	})
	if err == nil {
		err = mgr.AddHealthzCheck("ping", healthz.Ping)
	}
	var clientset kubernetes.Interface
	if err == nil {
		clientset, err = kubernetes.NewForConfig(cfg)
	}
	if err == nil {
		err = rolloutrunner.Setup(mgr, clientset, identity, leaseDuration)
	}
	if err != nil {
		log.Error(err, "setting up")
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "running")
		os.Exit(1)
	}
}
