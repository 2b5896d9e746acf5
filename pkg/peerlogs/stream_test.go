package peerlogs

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// syncBuffer is a buffer the follow loop writes while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func peerPod(name, node string) *corev1.Pod {
	p := pod(name, node, corev1.PodRunning)
	p.Labels = map[string]string{api.LabelApp: "gossip"}
	return p
}

// fakeCluster has nodes at sites a and b, and answers every log request
// with one stamped line (the fake cannot tell pods apart).
func fakeCluster(pods ...*corev1.Pod) *fake.Clientset {
	objs := []k8sruntime.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n1", Labels: map[string]string{api.LabelSite: "a"}}},
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n2", Labels: map[string]string{api.LabelSite: "b"}}},
	}
	for _, p := range pods {
		objs = append(objs, p)
	}
	client := fake.NewClientset(objs...)
	client.PrependReactor("create", "selfsubjectaccessreviews", func(action k8stesting.Action) (bool, k8sruntime.Object, error) {
		review := action.(k8stesting.CreateAction).GetObject().(*authorizationv1.SelfSubjectAccessReview)
		review.Status.Allowed = true
		return true, review, nil
	})
	client.PrependReactor("get", "pods", func(action k8stesting.Action) (bool, k8sruntime.Object, error) {
		if action.GetSubresource() != "log" {
			return false, nil, nil
		}
		opts := action.(k8stesting.GenericAction).GetValue().(*corev1.PodLogOptions)
		if !opts.Timestamps {
			return true, &k8sruntime.Unknown{Raw: []byte("asked without timestamps\n")}, nil
		}
		return true, &k8sruntime.Unknown{Raw: []byte("2026-01-01T00:00:00Z hello\n")}, nil
	})
	return client
}

func TestReadAllFake(t *testing.T) {
	var out, errOut syncBuffer
	s := &Streamer{
		Client: fakeCluster(peerPod("p2", "n2"), peerPod("p1", "n1")), Namespace: "p2p", Target: Target{App: "gossip"},
		Request: Request{Tail: -1}, Format: Format{Prefix: true}, MaxRequests: 1, Out: &out, ErrOut: &errOut,
	}
	if err := s.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if want := "[a/n1/p1] hello\n[b/n2/p2] hello\n"; out.String() != want {
		t.Errorf("out = %q, want %q", out.String(), want)
	}
}

// TestFollowFake: a pod created during the follow joins it, a container
// that restarts after its stream ended is followed again, and the follow
// ends with nil and leaves no goroutine behind when ctx ends.
func TestFollowFake(t *testing.T) {
	before := runtime.NumGoroutine()
	client := fakeCluster(peerPod("p1", "n1"))
	var out, errOut syncBuffer
	s := &Streamer{
		Client: client, Namespace: "p2p", Target: Target{App: "gossip"},
		Request: Request{Follow: true, Tail: -1}, Format: Format{Prefix: true}, MaxRequests: 1,
		Window: 10 * time.Millisecond, Out: &out, ErrOut: &errOut,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	waitFor(t, &out, "[a/n1/p1] hello\n")
	if _, err := client.CoreV1().Pods("p2p").Create(ctx, peerPod("p2", "n2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &out, "[a/n1/p1] hello\n[b/n2/p2] hello\n")
	waitFor(t, &errOut, "+ [a/n1/p1]\n+ [b/n2/p2]\n")

	// The fake's log ends at once, as a kubelet's does when the container
	// stops; the container's next run is read when its restart shows.
	time.Sleep(100 * time.Millisecond)
	p1 := peerPod("p1", "n1")
	p1.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "gossip", RestartCount: 1}}
	if _, err := client.CoreV1().Pods("p2p").UpdateStatus(ctx, p1, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, &out, "[a/n1/p1] hello\n[b/n2/p2] hello\n[a/n1/p1] hello\n")
	waitFor(t, &errOut, "+ [a/n1/p1]\n+ [b/n2/p2]\n+ [a/n1/p1]\n")

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run still runs 5s after its context ended")
	}
	// Run waits for its streams and its informer: nothing is left a moment
	// after it returns (a context's cancel propagation may still run).
	deadline := time.Now().Add(100 * time.Millisecond)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines after Run, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

func waitFor(t *testing.T, b *syncBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for b.String() != want {
		if time.Now().After(deadline) {
			t.Fatalf("got %q, want %q", b.String(), want)
		}
		if !strings.HasPrefix(want, b.String()) {
			t.Fatalf("got %q, want %q", b.String(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
