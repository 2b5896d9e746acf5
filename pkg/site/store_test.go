package site

import (
	"context"
	"math/big"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// TestAllocateIPUnderConflict: another enrollment writes the address table
// between this one's read and its update; the update is refused with a
// Conflict, and the allocation starts over from the new table instead of
// handing out the address the other one took.
func TestAllocateIPUnderConflict(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	store := NewStore(client)
	pool, err := ipam.NewPool("10.23.0.0/16")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.AllocateIP(ctx, pool, "first"); err != nil {
		t.Fatal(err)
	}
	// The next update of the table loses a race: "rival" took the next
	// free address in the meantime.
	var conflicts atomic.Int32
	client.PrependReactor("update", "configmaps", func(action k8stesting.Action) (bool, runtime.Object, error) {
		cm := action.(k8stesting.UpdateAction).GetObject().(*corev1.ConfigMap)
		if cm.Name != api.IPAMName || conflicts.Add(1) > 1 {
			return false, nil, nil
		}
		current, err := client.Tracker().Get(corev1.SchemeGroupVersion.WithResource("configmaps"), cm.Namespace, cm.Name)
		if err != nil {
			return true, nil, err
		}
		stored := current.(*corev1.ConfigMap).DeepCopy()
		table, err := ipam.Parse(stored.Data[ipamKey])
		if err != nil {
			return true, nil, err
		}
		if _, err := pool.Allocate(table, "rival"); err != nil {
			return true, nil, err
		}
		stored.Data[ipamKey] = table.Format()
		if err := client.Tracker().Update(corev1.SchemeGroupVersion.WithResource("configmaps"), stored, stored.Namespace); err != nil {
			return true, nil, err
		}
		return true, nil, apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name, nil)
	})

	got, err := store.AllocateIP(ctx, pool, "second")
	if err != nil {
		t.Fatal(err)
	}
	table, err := store.Allocations(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]netip.Addr{"first": netip.MustParseAddr("10.23.0.2"), "rival": netip.MustParseAddr("10.23.0.3"), "second": netip.MustParseAddr("10.23.0.4")}
	for owner, addr := range want {
		if held, ok := table.AddressOf(owner); !ok || held != addr {
			t.Errorf("%s holds %v (%v), want %s", owner, held, ok, addr)
		}
	}
	if got != want["second"] || conflicts.Load() != 2 {
		t.Errorf("second got %s after %d updates, want %s after a conflict and a retry", got, conflicts.Load(), want["second"])
	}

	if _, err := store.AllocateIP(ctx, pool, "rival"); err == nil || !strings.Contains(err.Error(), `"rival" holds overlay address 10.23.0.3`) {
		t.Errorf("enrolling rival twice: %v", err)
	}
}

func TestRevokedListRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	list := []vpn.Revoked{{Serial: big.NewInt(0xabc), RevokedAt: at}, {Serial: new(big.Int).Lsh(big.NewInt(1), 100), RevokedAt: at.Add(time.Hour)}}
	text := formatRevoked(list)
	if want := "abc 1795590000\n10000000000000000000000000 1795593600\n"; text != want {
		t.Errorf("formatRevoked = %q, want %q", text, want)
	}
	back, err := parseRevoked(text)
	if err != nil || !reflect.DeepEqual(back, list) {
		t.Errorf("parseRevoked(formatRevoked(x)) = %v, %v; want %v", back, err, list)
	}
}

func TestParseRevoked(t *testing.T) {
	for _, tc := range []struct {
		text, wantErr string
		want          int
	}{
		{text: "", want: 0},
		{text: "\n  \nabc 1\n", want: 1},
		{text: "abc", wantErr: `revocation list line "abc": want "SERIAL UNIX-TIME"`},
		{text: "abc 1 2", wantErr: `revocation list line "abc 1 2": want "SERIAL UNIX-TIME"`},
		{text: "xyz 1", wantErr: `revocation list: invalid serial "xyz"`},
		{text: "abc yesterday", wantErr: `revocation list: invalid time "yesterday"`},
	} {
		got, err := parseRevoked(tc.text)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("parseRevoked(%q) error %v, want %q", tc.text, err, tc.wantErr)
			}
			continue
		}
		if err != nil || len(got) != tc.want {
			t.Errorf("parseRevoked(%q) = %v, %v; want %d entries", tc.text, got, err, tc.want)
		}
	}
}

// TestBuildReport joins records, Node objects, bootstrap tokens and running
// pods into the sites and nodes `sites` and `status` print.
func TestBuildReport(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	client := fake.NewClientset(
		readyNode("tokyo-1", "tokyo", "10.23.0.2", corev1.ConditionTrue),
		readyNode("tokyo-2", "tokyo", "10.23.0.3", corev1.ConditionFalse),
		tokenSecret("aaaaaa", now.Add(time.Hour)),
		tokenSecret("bbbbbb", now.Add(-time.Minute)),
		pod("p2p", "gossip-0", "tokyo-1", map[string]string{"app.kubernetes.io/name": "gossip"}),
		pod("p2p", "gossip-1", "tokyo-2", map[string]string{"app": "gossip"}),
		pod("p2p", "loner", "tokyo-1", nil),
	)
	store := NewStore(client)
	records := []NodeRecord{
		{Name: "tokyo-1", Site: "tokyo", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.OpenVPN, TokenID: "aaaaaa", EnrolledAt: now},
		{Name: "tokyo-2", Site: "tokyo", OverlayIP: netip.MustParseAddr("10.23.0.3"), VPN: vpn.OpenVPN, TokenID: "bbbbbb", EnrolledAt: now},
		{Name: "osaka-1", Site: "osaka", OverlayIP: netip.MustParseAddr("10.23.0.4"), VPN: vpn.OpenVPN, TokenID: "cccccc", EnrolledAt: now},
	}
	for i := range records {
		if err := store.CreateNode(ctx, &records[i]); err != nil {
			t.Fatal(err)
		}
		if err := store.EnsureSite(ctx, records[i].Site, now); err != nil {
			t.Fatal(err)
		}
	}
	if err := store.EnsureSite(ctx, "paris", now); err != nil { // a site whose nodes all left
		t.Fatal(err)
	}

	report, err := store.BuildReport(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	type nodeRow struct{ name, state, internalIP, token string }
	var nodes []nodeRow
	for _, n := range report.Nodes.Items {
		nodes = append(nodes, nodeRow{n.Name, n.Status.State, n.Status.InternalIP, n.Status.TokenState})
	}
	wantNodes := []nodeRow{
		{"osaka-1", v1alpha1.NodeNotJoined, "", v1alpha1.TokenDeleted},
		{"tokyo-1", v1alpha1.NodeReady, "10.23.0.2", v1alpha1.TokenValid},
		{"tokyo-2", v1alpha1.NodeNotReady, "10.23.0.3", v1alpha1.TokenExpired},
	}
	if !reflect.DeepEqual(nodes, wantNodes) {
		t.Errorf("nodes:\n got %v\nwant %v", nodes, wantNodes)
	}
	sites := map[string]v1alpha1.SiteStatus{}
	var order []string
	for _, s := range report.Sites.Items {
		sites[s.Name] = s.Status
		order = append(order, s.Name)
	}
	wantSites := map[string]v1alpha1.SiteStatus{
		"osaka": {Nodes: 1},
		"paris": {},
		"tokyo": {Nodes: 2, Ready: 1, Pods: 3, Apps: map[string]int{"p2p/gossip": 2}},
	}
	if !reflect.DeepEqual(sites, wantSites) || strings.Join(order, ",") != "osaka,paris,tokyo" {
		t.Errorf("sites in order %v:\n got %+v\nwant %+v", order, sites, wantSites)
	}
}

func readyNode(name, siteName, ip string, ready corev1.ConditionStatus) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelSite: siteName}},
		Status: corev1.NodeStatus{
			Addresses:  []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}},
		},
	}
}

func tokenSecret(id string, expires time.Time) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: bootstraputil.BootstrapTokenSecretName(id), Namespace: metav1.NamespaceSystem},
		Type:       bootstrapapi.SecretTypeBootstrapToken,
		Data: map[string][]byte{
			bootstrapapi.BootstrapTokenIDKey:         []byte(id),
			bootstrapapi.BootstrapTokenSecretKey:     []byte("0123456789abcdef"),
			bootstrapapi.BootstrapTokenExpirationKey: []byte(expires.Format(time.RFC3339)),
		},
	}
}

// pod is a running pod (the fake clientset ignores BuildReport's
// status.phase field selector, so only running pods are given).
func pod(ns, name, node string, labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}
}
