// Package webhook serves the stage webhook: the HTTP/TLS plumbing, caches,
// health and metrics are controller-runtime's; the mutation itself is
// pkg/mutate's pure function over a view read from informer caches, so that
// no admission request costs an API call.
package webhook

import (
	"context"
	"fmt"
	"net/http"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

// Path is where the API server sends pod admission reviews.
const Path = "/mutate-v1-pod"

// ViewSource gives the mutation its view of the cluster and a namespace's labels.
type ViewSource interface {
	View(ctx context.Context) (mutate.View, error)
	NamespaceLabels(ctx context.Context, name string) (map[string]string, error)
}

// What a pod gets when its peers cannot be read (the --on-view-error flag).
const (
	// OnViewErrorDeny refuses the pod, saying why.
	OnViewErrorDeny = "deny"
	// OnViewErrorWarn admits it without seeds, with an admission warning and
	// the annotation mutate.AnnotationSeedsInjected.
	OnViewErrorWarn = "warn"
)

// PodMutator is the admission handler for pods.
type PodMutator struct {
	Decoder admission.Decoder
	Source  ViewSource
	// OnViewError is OnViewErrorDeny (also when empty) or OnViewErrorWarn.
	OnViewError string
	// SeedURL is the seed endpoint's base URL as peers reach it ("": no
	// STAGE_SEED_URL is injected).
	SeedURL string
}

// NewPodMutator returns a handler decoding with scheme.
func NewPodMutator(scheme *runtime.Scheme, source ViewSource, onViewError, seedURL string) *PodMutator {
	return &PodMutator{Decoder: admission.NewDecoder(scheme), Source: source, OnViewError: onViewError, SeedURL: seedURL}
}

// ValidateOnViewError checks a value of --on-view-error.
func ValidateOnViewError(v string) error {
	if v != OnViewErrorDeny && v != OnViewErrorWarn {
		return fmt.Errorf("--on-view-error=%q: must be %q or %q", v, OnViewErrorDeny, OnViewErrorWarn)
	}
	return nil
}

// Handle decodes the pod, mutates it and answers with a JSON patch.
func (m *PodMutator) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	resp, result := m.handle(ctx, req)
	observe(result, time.Since(start))
	log.FromContext(ctx).V(1).Info("pod admission", "namespace", req.Namespace, "name", req.Name, "result", result, "reason", resp.Result)
	return resp
}

func (m *PodMutator) handle(ctx context.Context, req admission.Request) (admission.Response, string) {
	if req.Kind.Kind != "Pod" || req.Kind.Group != "" {
		return admission.Allowed("not a pod"), resultSkipped
	}
	pod := &corev1.Pod{}
	if err := m.Decoder.Decode(req, pod); err != nil {
		return admission.Errored(http.StatusBadRequest, err), resultErrored
	}
	// The request's namespace is the API server's word; a namespace in the
	// body (which the API server rejects when it differs) is never trusted,
	// so a kube-system pod can never pass for another namespace's.
	if req.Namespace != "" {
		pod.Namespace = req.Namespace
	}
	if pod.Name == "" {
		pod.Name = req.Name
	}
	nsLabels, err := m.Source.NamespaceLabels(ctx, pod.Namespace)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, err), resultErrored
	}
	if ok, reason := mutate.OptedIn(pod, nsLabels); !ok {
		return admission.Allowed(reason), resultSkipped
	}
	view, err := m.Source.View(ctx)
	if err != nil {
		return admission.Errored(http.StatusInternalServerError, fmt.Errorf("cannot place the pod: %w", err)), resultErrored
	}
	// A pod named by generateName has no name yet: the request's UID tells
	// it apart from its siblings for the choice of seeds.
	opts := mutate.Options{SeedURL: m.SeedURL}
	if pod.Name == "" {
		opts.SeedKey = string(req.UID)
	}
	mutated, decision, err := mutate.Mutate(pod, nsLabels, view, opts)
	if err != nil {
		return admission.Denied(err.Error()), resultDenied
	}
	if decision.SeedsErr != nil {
		if m.OnViewError != OnViewErrorWarn {
			return admission.Errored(http.StatusInternalServerError, fmt.Errorf("%w: the pod is refused rather than started without peer seeds (the webhook's --on-view-error=%s; %s admits it without seeds)",
				decision.SeedsErr, OnViewErrorDeny, OnViewErrorWarn)), resultErrored
		}
		decision.Warnings = append(decision.Warnings, fmt.Sprintf("%s is empty: %v (annotation %s)", api.EnvPeerSeeds, decision.SeedsErr, mutate.AnnotationSeedsInjected))
	}
	if !decision.Mutated {
		return admission.Allowed(decision.Reason).WithWarnings(decision.Warnings...), resultSkipped
	}
	patches := podPatch(pod, mutated)
	if len(patches) == 0 {
		return admission.Allowed("already mutated").WithWarnings(decision.Warnings...), resultSkipped
	}
	patchType := admissionv1.PatchTypeJSONPatch
	resp := admission.Response{Patches: patches, AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true, PatchType: &patchType}}
	resp = resp.WithWarnings(decision.Warnings...)
	return resp, resultPatched
}
