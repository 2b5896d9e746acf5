package agent

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// fakeWG is an interface whose peers change with `wg set`, as wg(8) would.
type fakeWG struct {
	mu    sync.Mutex
	peers map[string]string // key -> allowed-ips
	// learned are the endpoints WireGuard saw packets come from, by key.
	learned map[string]string
	sets    []string
	// dumps counts the `wg show` runs.
	dumps int
}

func (f *fakeWG) run(_ context.Context, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name != "wg" {
		return nil, fmt.Errorf("unexpected command %s", name)
	}
	if args[0] == "show" {
		f.dumps++
		var b strings.Builder
		b.WriteString("private\tpublic\t51821\toff\n")
		for key, allowed := range f.peers {
			endpoint := cmp.Or(f.learned[key], "(none)")
			fmt.Fprintf(&b, "%s\t(none)\t%s\t%s\t0\t0\t0\toff\n", key, endpoint, allowed)
		}
		return []byte(b.String()), nil
	}
	f.sets = append(f.sets, strings.Join(args[2:], " "))
	for i := 2; i < len(args); i++ {
		if args[i] != "peer" {
			continue
		}
		key := args[i+1]
		if args[i+2] == "remove" {
			delete(f.peers, key)
			continue
		}
		for j := i + 2; j < len(args) && args[j] != "peer"; j++ {
			if args[j] == "allowed-ips" {
				f.peers[key] = args[j+1]
			}
		}
	}
	return nil, nil
}

func (f *fakeWG) state() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.peers {
		out[k] = v
	}
	return out
}

func record(t *testing.T, rec site.NodeRecord) *corev1.ConfigMap {
	t.Helper()
	data, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: api.NodePrefix + rec.Name, Namespace: api.SystemNamespace,
			Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue, api.LabelRecord: "node", api.LabelSite: rec.Site}},
		Data: map[string]string{"record": string(data)},
	}
}

func addressTable(table ipam.Allocations) *corev1.ConfigMap {
	return &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: api.IPAMName, Namespace: api.SystemNamespace, Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue}},
		Data:       map[string]string{"allocations": table.Format()},
	}
}

// stagingConfigMap is a WireGuard staging configuration with the hub's key.
func stagingConfigMap(t *testing.T, hubKey string) *corev1.ConfigMap {
	return backendConfigMap(t, vpn.WireGuard, hubKey)
}

// backendConfigMap is a staging configuration of the backend.
func backendConfigMap(t *testing.T, backend vpn.Backend, hubKey string) *corev1.ConfigMap {
	cfg := site.Config{OverlayCIDR: "10.23.0.0/16", HubEndpoint: "198.18.0.1:51820", HubPublicKey: hubKey, VPN: backend,
		APIServerEndpoint: "10.23.0.1:6443", TokenTTL: site.Duration{Duration: time.Hour}, CredentialValidity: site.Duration{Duration: time.Hour}}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: api.ConfigName, Namespace: api.SystemNamespace,
		Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue}}, Data: map[string]string{"config": string(cfgJSON)}}
}

// startRecords starts the process's watch for the test's duration.
func startRecords(t *testing.T, client kubernetes.Interface) *Records {
	ctx, cancel := context.WithCancel(context.Background())
	records := NewRecords(client, time.Hour)
	records.Start(ctx)
	t.Cleanup(func() {
		cancel()
		records.Shutdown()
	})
	return records
}

func key(t *testing.T) string {
	k, err := vpn.NewWireGuardKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public
}

// TestMeshFollowsTheRecords runs the agent's loop against a fake API server
// and a fake wg: a join adds the direct peer, a forged record is refused,
// a leave removes the peer, and the hub is kept throughout.
func TestMeshFollowsTheRecords(t *testing.T) {
	hubKey := key(t)
	now := time.Now().UTC().Truncate(time.Second)
	self := site.NodeRecord{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.WireGuard, WireGuardPublicKey: key(t), Endpoint: "198.18.200.1:51821", EnrolledAt: now}
	other := site.NodeRecord{Name: "b-1", Site: "b", OverlayIP: netip.MustParseAddr("10.23.0.3"), VPN: vpn.WireGuard, WireGuardPublicKey: key(t), Endpoint: "198.18.200.2:51821", EnrolledAt: now}
	client := fake.NewSimpleClientset(stagingConfigMap(t, hubKey), record(t, self), addressTable(ipam.Allocations{self.OverlayIP: self.Name, other.OverlayIP: other.Name}))
	wg := &fakeWG{peers: map[string]string{}}
	var log syncBuffer
	m := &Mesh{Client: client, Records: startRecords(t, client), Node: "a-1", Resync: time.Hour, Log: &log, Applier: &mesh.Applier{Device: "stage0", Run: wg.run}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})

	waitState := func(what string, want map[string]string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for fmt.Sprint(wg.state()) != fmt.Sprint(want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: peers %v, want %v\nlog:\n%s", what, wg.state(), want, log.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitState("alone", map[string]string{hubKey: "10.23.0.0/16"})

	ctx2 := context.Background()
	if _, err := client.CoreV1().ConfigMaps(api.SystemNamespace).Create(ctx2, record(t, other), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState("b-1 joined", map[string]string{hubKey: "10.23.0.0/16", other.WireGuardPublicKey: "10.23.0.3/32"})

	forged := other
	forged.Name, forged.WireGuardPublicKey, forged.EnrolledAt = "evil", key(t), now.Add(time.Minute)
	if _, err := client.CoreV1().ConfigMaps(api.SystemNamespace).Create(ctx2, record(t, forged), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "refusing node evil: claims overlay address 10.23.0.3, which b-1 holds") {
		if time.Now().After(deadline) {
			t.Fatalf("the forged record was not refused; log:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitState("the forged record changes nothing", map[string]string{hubKey: "10.23.0.0/16", other.WireGuardPublicKey: "10.23.0.3/32"})

	// leave deletes the record and releases the address; the forged record
	// still claims it, and stays refused.
	if err := client.CoreV1().ConfigMaps(api.SystemNamespace).Delete(ctx2, api.NodePrefix+"b-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps(api.SystemNamespace).Update(ctx2, addressTable(ipam.Allocations{self.OverlayIP: self.Name}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitState("b-1 left", map[string]string{hubKey: "10.23.0.0/16"})
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "refusing node evil: claims overlay address 10.23.0.3, which the address table gives to no node") {
		if time.Now().After(deadline) {
			t.Fatalf("the forged record was not refused after b-1 left; log:\n%s", log.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitState("the forged record still changes nothing", map[string]string{hubKey: "10.23.0.0/16"})
	if strings.Contains(log.String(), "private") {
		t.Errorf("the log repeats the interface line of the dump:\n%s", log.String())
	}
}

// The hub reads its interface once per reconcile: the dump Apply reads
// for its changes is the one the observed endpoints are published from,
// both when the reconcile changes peers and when it changes nothing.
func TestHubReadsTheInterfaceOncePerReconcile(t *testing.T) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Second)
	roaming := site.NodeRecord{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.WireGuard, WireGuardPublicKey: key(t), Endpoint: mesh.EndpointAuto, EnrolledAt: now}
	joining := site.NodeRecord{Name: "b-1", Site: "b", OverlayIP: netip.MustParseAddr("10.23.0.3"), VPN: vpn.WireGuard, WireGuardPublicKey: key(t), Endpoint: "198.18.200.2:51821", EnrolledAt: now}
	objects := []*corev1.ConfigMap{stagingConfigMap(t, key(t)), record(t, roaming), record(t, joining),
		addressTable(ipam.Allocations{roaming.OverlayIP: roaming.Name, joining.OverlayIP: joining.Name})}
	records := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, cm := range objects {
		if err := records.Add(cm); err != nil {
			t.Fatal(err)
		}
	}
	lister := corelisters.NewConfigMapLister(records).ConfigMaps(api.SystemNamespace)
	// a-1 is a peer already, its packets seen from behind a NAT; b-1 just joined.
	wg := &fakeWG{peers: map[string]string{roaming.WireGuardPublicKey: "10.23.0.2/32"},
		learned: map[string]string{roaming.WireGuardPublicKey: "203.0.113.7:40001"}}
	client := fake.NewClientset()
	m := &Mesh{Client: client, Hub: true, Applier: &mesh.Applier{Device: "stage0", Run: wg.run}}

	for _, tc := range []struct {
		what string
		sets int
	}{
		{"the reconcile adding b-1", 1},
		{"a reconcile changing nothing", 1},
	} {
		before := wg.dumps
		if err := m.reconcile(ctx, lister); err != nil {
			t.Fatalf("%s: %v", tc.what, err)
		}
		if dumps := wg.dumps - before; dumps != 1 {
			t.Errorf("%s ran wg show %d times, want once", tc.what, dumps)
		}
		if len(wg.sets) != tc.sets {
			t.Errorf("after %s: wg set ran %d times, want %d: %q", tc.what, len(wg.sets), tc.sets, wg.sets)
		}
		cm, err := client.CoreV1().ConfigMaps(api.SystemNamespace).Get(ctx, api.ObservedEndpointsName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("after %s: %v", tc.what, err)
		}
		if want := map[string]string{"a-1": "203.0.113.7:40001"}; !maps.Equal(cm.Data, want) {
			t.Errorf("after %s: published %v, want %v", tc.what, cm.Data, want)
		}
	}
}

// TestMeshIdlesOnAStar: on an OpenVPN overlay the loop runs no wg command,
// says so once, and returns no error, so the conditions' loop beside it
// keeps running.
func TestMeshIdlesOnAStar(t *testing.T) {
	self := site.NodeRecord{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.OpenVPN, EnrolledAt: time.Now().UTC()}
	client := fake.NewSimpleClientset(backendConfigMap(t, vpn.OpenVPN, ""), record(t, self), addressTable(ipam.Allocations{self.OverlayIP: self.Name}))
	var ran syncBuffer
	var log syncBuffer
	m := &Mesh{Client: client, Records: startRecords(t, client), Node: "a-1", Resync: time.Second, Log: &log, Applier: &mesh.Applier{Device: "stage0",
		Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
			fmt.Fprintln(&ran, name, strings.Join(args, " "))
			return nil, nil
		}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("the loop on an OpenVPN overlay: %v", err)
	}
	if ran.String() != "" {
		t.Errorf("the loop on an OpenVPN overlay ran:\n%s", ran.String())
	}
	const want = "the overlay uses openvpn, a star in which every path goes through the hub: no WireGuard peers to keep"
	if got := log.String(); strings.Count(got, want) != 1 || strings.Count(got, "\n") != 1 {
		t.Errorf("log after two resyncs:\n%s\nwant the one line %q", got, want)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
