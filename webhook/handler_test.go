package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

type fixedSource struct {
	view   mutate.StaticView
	labels map[string]map[string]string
}

func (f fixedSource) View(context.Context) (mutate.View, error) { return f.view, nil }
func (f fixedSource) NamespaceLabels(_ context.Context, ns string) (map[string]string, error) {
	return f.labels[ns], nil
}

var source = fixedSource{
	view: mutate.StaticView{SiteNames: []string{"osaka", "tokyo"}, PeersByApp: map[string][]mutate.Peer{
		"p2p/dht": {{Name: "dht-0", Site: "tokyo", HostIP: "10.23.0.2", Ready: true, HostNetwork: true}},
	}},
	labels: map[string]map[string]string{"p2p": {"kubectl-stage.io/inject": "enabled"}},
}

func handler() *PodMutator {
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	return NewPodMutator(scheme, source, OnViewErrorDeny, "http://stage-seeds.kubectl-stage-system.svc:8082")
}

func request(namespace, podJSON string) admission.Request {
	return admission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "1",
		Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
		Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
		Namespace: namespace,
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: []byte(podJSON)},
	}}
}

func TestHandle(t *testing.T) {
	tests := []struct {
		name        string
		namespace   string
		pod         string
		wantAllowed bool
		wantPatches []string // "op path" prefixes, in order
		wantMessage string
		wantWarning string
	}{
		{
			name:        "namespace opted in",
			namespace:   "p2p",
			pod:         `{"metadata":{"name":"dht-1","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/port":"4001"}},"spec":{"hostNetwork":true,"containers":[{"name":"n","image":"dht","ports":[{"containerPort":4001}]}]}}`,
			wantAllowed: true,
			wantPatches: []string{"add /metadata/annotations/kubectl-stage.io~1injected", "add /metadata/labels/kubectl-stage.io~1app", "add /spec/affinity", "add /spec/containers/0/env", "add /spec/topologySpreadConstraints"},
		},
		{
			name:        "admitted with a warning",
			namespace:   "p2p",
			pod:         `{"metadata":{"name":"dht-3","labels":{"app":"dht"}},"spec":{"hostNetwork":true,"containers":[{"name":"n","image":"dht"}]}}`,
			wantAllowed: true,
			wantPatches: []string{"add /metadata/annotations", "add /metadata/labels/kubectl-stage.io~1app", "add /spec/affinity", "add /spec/containers/0/env", "add /spec/topologySpreadConstraints"},
			wantWarning: "without annotation kubectl-stage.io/port, peers on one node advertise the same address",
		},
		{
			name:        "unreachable at its advertised address",
			namespace:   "p2p",
			pod:         `{"metadata":{"name":"dht-4","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/port":"4001"}},"spec":{"containers":[{"name":"n","image":"dht"}]}}`,
			wantMessage: "STAGE_ADVERTISE_IP is the node's overlay IP, which does not reach this pod: set spec.hostNetwork: true, or give a container the hostPort 4001",
		},
		{
			name:        "not opted in",
			namespace:   "default",
			pod:         `{"metadata":{"name":"web","labels":{"app":"web"}},"spec":{"containers":[{"name":"n","image":"nginx"}]}}`,
			wantAllowed: true,
			wantMessage: "neither the pod nor its namespace",
		},
		{
			name:        "bad annotation",
			namespace:   "p2p",
			pod:         `{"metadata":{"name":"dht-2","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/seeds":"many"}},"spec":{"containers":[{"name":"n","image":"dht"}]}}`,
			wantMessage: `annotation kubectl-stage.io/seeds="many": must be a whole number from 0 to 256`,
		},
		{
			name:        "kube-system pod whose body claims an opted-in namespace",
			namespace:   "kube-system",
			pod:         `{"metadata":{"name":"dht-5","namespace":"p2p","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/port":"4001"}},"spec":{"hostNetwork":true,"containers":[{"name":"n","image":"dht","ports":[{"containerPort":4001}]}]}}`,
			wantAllowed: true,
			wantMessage: "kube-system is never mutated",
		},
		{
			name:        "not a pod",
			namespace:   "p2p",
			pod:         `{"metadata":{"name":"x"},"spec":{"containers":"oops"}}`,
			wantMessage: "cannot unmarshal",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := handler().Handle(context.Background(), request(tt.namespace, tt.pod))
			if resp.Allowed != tt.wantAllowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tt.wantAllowed, resp.Result)
			}
			if tt.wantMessage != "" && (resp.Result == nil || !strings.Contains(resp.Result.Message, tt.wantMessage)) {
				t.Errorf("message = %+v, want %q", resp.Result, tt.wantMessage)
			}
			if got := strings.Join(resp.Warnings, "\n"); (tt.wantWarning == "") != (got == "") || !strings.Contains(got, tt.wantWarning) {
				t.Errorf("warnings = %q, want %q", resp.Warnings, tt.wantWarning)
			}
			var got []string
			for _, p := range resp.Patches {
				got = append(got, p.Operation+" "+p.Path)
			}
			if strings.Join(got, "\n") != strings.Join(tt.wantPatches, "\n") {
				t.Errorf("patches:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(tt.wantPatches, "\n"))
			}
		})
	}
}

// FuzzAdmissionReview feeds arbitrary AdmissionReview bodies through decoding
// and mutation: the handler must answer, never panic, and every patch it
// returns must apply to the pod it was given.
func FuzzAdmissionReview(f *testing.F) {
	f.Add(`{"request":{"uid":"1","kind":{"version":"v1","kind":"Pod"},"namespace":"p2p","object":{"metadata":{"name":"a","labels":{"app":"dht"}},"spec":{"containers":[{"name":"n"}]}}}}`)
	f.Add(`{"request":{"uid":"2","kind":{"version":"v1","kind":"Pod"},"namespace":"p2p","object":{"metadata":{"labels":{"app":"dht","kubectl-stage.io/inject":"enabled"},"annotations":{"kubectl-stage.io/sites":"1","kubectl-stage.io/placement":"one-per-site","kubectl-stage.io/port":"1"}},"spec":{"affinity":{"nodeAffinity":{}},"containers":[{"name":"n","env":[{"name":"STAGE_SITE","value":"x"}]}]}}}}`)
	f.Add(`{"request":{"kind":{"kind":"Pod"},"object":null}}`)
	f.Add(`{"request":{"uid":"3","kind":{"version":"v1","kind":"Pod"},"namespace":"p2p","object":{"metadata":{"name":"dht-1","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/port":"4001","kubectl-stage.io/placement":"one-per-site"}},"spec":{"hostNetwork":true,"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"disktype","operator":"In","values":["ssd"]}]}]}}},"initContainers":[{"name":"i"}],"containers":[{"name":"n","ports":[{"containerPort":4001}],"env":[{"name":"X","value":"1"}]}]}}}}`)
	h := handler()
	f.Fuzz(func(t *testing.T, body string) {
		var review admissionv1.AdmissionReview
		if err := json.Unmarshal([]byte(body), &review); err != nil || review.Request == nil {
			return
		}
		resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: *review.Request})
		if !resp.Allowed || len(resp.Patches) == 0 {
			return
		}
		// The API server applies the patch to the pod as it serializes it:
		// it must apply, give a valid Pod, and that Pod needs no more patches.
		var pod corev1.Pod
		if err := json.Unmarshal(review.Request.Object.Raw, &pod); err != nil {
			t.Fatalf("patched a pod that does not decode: %v", err)
		}
		original, err := json.Marshal(&pod)
		if err != nil {
			t.Fatal(err)
		}
		ops, err := json.Marshal(resp.Patches)
		if err != nil {
			t.Fatalf("unmarshalable patch: %v", err)
		}
		patch, err := jsonpatch.DecodePatch(ops)
		if err != nil {
			t.Fatalf("not a JSON patch: %v\n%s", err, ops)
		}
		patched, err := patch.Apply(original)
		if err != nil {
			t.Fatalf("the patch does not apply to the pod: %v\npod: %s\npatch: %s", err, original, ops)
		}
		decoder := json.NewDecoder(bytes.NewReader(patched))
		decoder.DisallowUnknownFields()
		var mutated corev1.Pod
		if err := decoder.Decode(&mutated); err != nil {
			t.Fatalf("the patched pod does not decode as a Pod: %v\n%s", err, patched)
		}
		again := *review.Request
		again.Object.Raw = patched
		if resp := h.Handle(context.Background(), admission.Request{AdmissionRequest: again}); !resp.Allowed || len(resp.Patches) > 0 {
			t.Fatalf("the patched pod is not left alone (allowed %t, %d patches: %v): mutation is not idempotent", resp.Allowed, len(resp.Patches), resp.Patches)
		}
	})
}

func BenchmarkHandle(b *testing.B) {
	h := handler()
	req := request("p2p", `{"metadata":{"name":"dht-1","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/port":"4001"}},"spec":{"hostNetwork":true,"containers":[{"name":"n","image":"dht","ports":[{"containerPort":4001}]}]}}`)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if resp := h.Handle(context.Background(), req); !resp.Allowed {
			b.Fatal(resp.Result)
		}
	}
}

// When the peers cannot be read the pod is refused, saying why; or, with
// --on-view-error=warn, admitted without seeds, with a warning and an
// annotation saying so. A view that cannot be read at all (no sites) is
// always an error.
func TestViewErrors(t *testing.T) {
	broken := source
	broken.view.Err = errors.New("the webhook has not yet read every peer")
	const pod = `{"metadata":{"name":"dht-1","labels":{"app":"dht"},"annotations":{"kubectl-stage.io/port":"4001"}},"spec":{"hostNetwork":true,"containers":[{"name":"n","image":"dht","ports":[{"containerPort":4001}]}]}}`
	tests := []struct {
		name        string
		source      ViewSource
		onViewError string
		wantAllowed bool
		wantMessage string
		wantWarning string
		wantNote    string
	}{
		{"deny", broken, OnViewErrorDeny, false,
			`cannot read the peers of app "dht" in namespace "p2p": the webhook has not yet read every peer: the pod is refused rather than started without peer seeds (the webhook's --on-view-error=deny; warn admits it without seeds)`, "", ""},
		{"deny by default", broken, "", false, "the pod is refused rather than started without peer seeds", "", ""},
		{"warn", broken, OnViewErrorWarn, true, "",
			`STAGE_PEER_SEEDS is empty: cannot read the peers of app "dht" in namespace "p2p": the webhook has not yet read every peer (annotation kubectl-stage.io/seeds-injected)`,
			`false: cannot read the peers of app "dht" in namespace "p2p": the webhook has not yet read every peer`},
		{"no view at all", failingSource{source}, OnViewErrorWarn, false, "cannot place the pod: the node cache is still syncing", "", ""},
		{"readable", source, OnViewErrorDeny, true, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := handler()
			h.Source, h.OnViewError = tt.source, tt.onViewError
			resp := h.Handle(context.Background(), request("p2p", pod))
			if resp.Allowed != tt.wantAllowed {
				t.Fatalf("allowed = %v, want %v (%+v)", resp.Allowed, tt.wantAllowed, resp.Result)
			}
			if tt.wantMessage != "" && (resp.Result == nil || resp.Result.Message != tt.wantMessage && !strings.Contains(resp.Result.Message, tt.wantMessage)) {
				t.Errorf("message = %+v\nwant %q", resp.Result, tt.wantMessage)
			}
			if got := strings.Join(resp.Warnings, "\n"); got != tt.wantWarning {
				t.Errorf("warnings = %q\nwant %q", got, tt.wantWarning)
			}
			note := ""
			for _, p := range resp.Patches {
				if p.Path == "/metadata/annotations/kubectl-stage.io~1seeds-injected" {
					note, _ = p.Value.(string)
				}
			}
			if note != tt.wantNote {
				t.Errorf("annotation %s = %q\nwant %q", mutate.AnnotationSeedsInjected, note, tt.wantNote)
			}
		})
	}
}

type failingSource struct{ fixedSource }

func (failingSource) View(context.Context) (mutate.View, error) {
	return nil, errors.New("the node cache is still syncing")
}
