package peergraph

import (
	"context"
	"io"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	restclient "k8s.io/client-go/rest"
	clienttesting "k8s.io/client-go/testing"
)

// TestViewsNameTheMissingProxyPermission: a reader that may not use the pod
// proxy (a rollout controller installed without pods/proxy) says which
// permission it lacks, rather than the proxy's reasonless "unknown".
func TestViewsNameTheMissingProxyPermission(t *testing.T) {
	client := fake.NewSimpleClientset()
	client.AddProxyReactor("pods", func(clienttesting.Action) (bool, restclient.ResponseWrapper, error) {
		return true, refused{apierrors.NewForbidden(schema.GroupResource{Resource: "pods/proxy"}, "node-0", nil)}, nil
	})
	views, err := Reader{Client: client}.Views(context.Background(), "p2p", []Peer{{Pod: "node-0", Endpoint: ":17946/peers"}})
	if err != nil {
		t.Fatal(err)
	}
	const want = "GET 17946/peers through the API server: forbidden: this identity may not get pods/proxy in namespace p2p " +
		"(check: kubectl auth can-i get pods --subresource=proxy -n p2p); grant it, as the chart's rollout controller ClusterRole does"
	if got := views["node-0"].Err; got == nil || got.Error() != want {
		t.Errorf("view error %v, want %q", got, want)
	}
}

// refused is the API server's answer to a proxy request it refuses.
type refused struct{ err error }

func (r refused) DoRaw(context.Context) ([]byte, error) { return nil, r.err }

func (r refused) Stream(context.Context) (io.ReadCloser, error) { return nil, r.err }
