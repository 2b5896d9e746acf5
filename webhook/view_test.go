package webhook

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

func node(name, site string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelSite: site}}}
}

func peerPod(name, nodeName, ip string, ready bool) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "p2p", Labels: map[string]string{api.LabelApp: "dht"}},
		Spec:       corev1.PodSpec{NodeName: nodeName, HostNetwork: true},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
}

// listedPeers are the index's ready peers of p2p/dht as "site=name,...".
func listedPeers(x *mutate.Index) string {
	var out []string
	_ = x.Peers("p2p", "dht", func(r *mutate.ReadyPeers) {
		for _, site := range r.Sites() {
			c := r.Reachable(site, 0)
			for i := range c.Len() {
				out = append(out, site+"="+c.At(i).Name)
			}
		}
	})
	return strings.Join(out, " ")
}

// The informers' events, as the handlers get them, keep the index current.
func TestEventHandlers(t *testing.T) {
	deleting := peerPod("dht-0", "tokyo-1", "10.23.0.2", true)
	deleting.DeletionTimestamp = &metav1.Time{}
	tests := []struct {
		name   string
		events func(nodes, pods toolscache.ResourceEventHandler)
		want   string
	}{
		{"add", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), true)
		}, "tokyo=dht-0"},
		{"becomes ready", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", false), false)
			pods.OnUpdate(peerPod("dht-0", "tokyo-1", "10.23.0.2", false), peerPod("dht-0", "tokyo-1", "10.23.0.2", true))
		}, "tokyo=dht-0"},
		{"moves node", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			pods.OnUpdate(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), peerPod("dht-0", "osaka-1", "10.23.0.3", true))
		}, "osaka=dht-0"},
		{"being deleted", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			pods.OnUpdate(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), deleting)
		}, ""},
		{"delete", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			pods.OnAdd(peerPod("dht-1", "osaka-1", "10.23.0.3", true), false)
			pods.OnDelete(peerPod("dht-0", "tokyo-1", "10.23.0.2", true))
		}, "osaka=dht-1"},
		{"tombstone with the pod", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			pods.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "p2p/dht-0", Obj: peerPod("dht-0", "tokyo-1", "10.23.0.2", true)})
		}, ""},
		{"tombstone with only the key", func(_, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			pods.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "p2p/dht-0"})
		}, ""},
		{"a node's site changes", func(nodes, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			nodes.OnUpdate(node("tokyo-1", "tokyo"), node("tokyo-1", "frankfurt"))
		}, "frankfurt=dht-0"},
		{"a node's tombstone", func(nodes, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			nodes.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "tokyo-1"})
		}, "=dht-0"},
		{"not an object", func(nodes, pods toolscache.ResourceEventHandler) {
			pods.OnAdd(peerPod("dht-0", "tokyo-1", "10.23.0.2", true), false)
			pods.OnDelete("junk")
			nodes.OnDelete(42)
		}, "tokyo=dht-0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := mutate.NewIndex()
			nodes, pods := nodeHandler(x), podHandler(x)
			nodes.OnAdd(node("tokyo-1", "tokyo"), true)
			nodes.OnAdd(node("osaka-1", "osaka"), true)
			tt.events(nodes, pods)
			if got := listedPeers(x); got != tt.want {
				t.Errorf("peers = %q, want %q", got, tt.want)
			}
		})
	}
}

// Until the informers have listed everything, the view says so instead of
// answering with what it has.
func TestViewBeforeSync(t *testing.T) {
	synced := func(b bool) func() bool { return func() bool { return b } }
	s := &IndexSource{Index: mutate.NewIndex(), nodesSynced: synced(false), podsSynced: synced(false)}
	if _, err := s.View(context.Background()); err == nil || !strings.Contains(err.Error(), "node cache is still syncing") {
		t.Errorf("nodes not synced: err %v", err)
	}
	s.nodesSynced = synced(true)
	v, err := s.View(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Peers("p2p", "dht", func(*mutate.ReadyPeers) {}); err == nil || !strings.Contains(err.Error(), "pod cache is still syncing") {
		t.Errorf("pods not synced: err %v", err)
	}
	s.podsSynced = synced(true)
	if err := v.Peers("p2p", "dht", func(*mutate.ReadyPeers) {}); err != nil {
		t.Errorf("synced: %v", err)
	}
}
