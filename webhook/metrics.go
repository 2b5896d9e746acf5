package webhook

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Admission results, the label of the metrics.
const (
	resultPatched = "patched"
	resultSkipped = "skipped"
	resultDenied  = "denied"
	resultErrored = "errored"
)

var (
	admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "kubectl_stage_webhook_admissions_total",
		Help: "Pod admission requests by result: patched, skipped (not opted in or already mutated), denied (bad annotations), errored.",
	}, []string{"result"})
	admissionSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kubectl_stage_webhook_admission_duration_seconds",
		Help:    "Time to answer a pod admission request, by result.",
		Buckets: []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25},
	}, []string{"result"})
)

func init() {
	// controller-runtime serves this registry on the manager's metrics endpoint.
	ctrlmetrics.Registry.MustRegister(admissions, admissionSeconds)
}

func observe(result string, d time.Duration) {
	admissions.WithLabelValues(result).Inc()
	admissionSeconds.WithLabelValues(result).Observe(d.Seconds())
}
