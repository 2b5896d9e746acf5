package webhook

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// Options configure the webhook server.
type Options struct {
	// Host and Port the HTTPS server listens on.
	Host string
	Port int
	// CertDir holds tls.crt and tls.key; they are reloaded when they change,
	// so certificates rotate without a restart.
	CertDir string
	// MetricsAddr and HealthAddr serve Prometheus metrics and /healthz, /readyz ("0" disables).
	MetricsAddr string
	HealthAddr  string
	// OnViewError is what a pod gets when its peers cannot be read:
	// OnViewErrorDeny (the default) or OnViewErrorWarn.
	OnViewError string
	// SeedsAddr serves the seed endpoint (plain HTTP; "" or "0" disables).
	SeedsAddr string
	// SeedURL is the seed endpoint's base URL as peers reach it, injected
	// as STAGE_SEED_URL ("": not injected).
	SeedURL string
}

// NewManager assembles a controller-runtime manager serving the webhook. It
// only reads the cluster, so it needs no leader election: every replica
// answers admission requests.
func NewManager(cfg *rest.Config, o Options) (ctrl.Manager, error) {
	if o.OnViewError == "" {
		o.OnViewError = OnViewErrorDeny
	}
	if err := ValidateOnViewError(o.OnViewError); err != nil {
		return nil, err
	}
	if err := ValidateSeedURL(o.SeedURL); err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	peerPods, err := labels.Parse(api.LabelApp)
	if err != nil {
		return nil, err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: o.Host, Port: o.Port, CertDir: o.CertDir,
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }},
		}),
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			// Only the peers the webhook labelled are cached, not every pod.
			&corev1.Pod{}: {Label: peerPods},
		}},
	})
	if err != nil {
		return nil, fmt.Errorf("creating the manager: %w", err)
	}
	// The informers start with the manager; registering needs no context.
	source, err := NewIndexSource(context.Background(), mgr.GetCache())
	if err != nil {
		return nil, err
	}
	handler := NewPodMutator(scheme, source, o.OnViewError, strings.TrimSuffix(o.SeedURL, "/"))
	mgr.GetWebhookServer().Register(Path, &webhook.Admission{Handler: handler, RecoverPanic: ptr.To(true)})
	if o.SeedsAddr != "" && o.SeedsAddr != "0" {
		if err := mgr.Add(manager.RunnableFunc(seedServer(o.SeedsAddr, source))); err != nil {
			return nil, err
		}
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	// Ready once the HTTPS server answers and the caches are synced.
	if err := mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		if !mgr.GetCache().WaitForCacheSync(req.Context()) {
			return fmt.Errorf("informer caches not synced")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	return mgr, nil
}

var _ admission.Handler = &PodMutator{}
