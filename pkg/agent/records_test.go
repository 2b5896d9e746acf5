package agent

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// TestLoopsShareOneWatch: the mesh and the conditions' loop of one agent
// read the cluster through one list and one watch of the ConfigMaps, also
// when the conditions' loop stops and starts again (a handover).
func TestLoopsShareOneWatch(t *testing.T) {
	self := site.NodeRecord{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.OpenVPN, EnrolledAt: time.Now().UTC()}
	client := fake.NewSimpleClientset(backendConfigMap(t, vpn.OpenVPN, ""), record(t, self), addressTable(ipam.Allocations{self.OverlayIP: self.Name}),
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a-1"}})
	records := startRecords(t, client)
	var log syncBuffer
	m := &Mesh{Client: client, Records: records, Node: "a-1", Resync: time.Hour, Log: &log, Applier: &mesh.Applier{Device: "stage0"}}
	host := &fakeHost{fail: map[string]string{"tc qdisc add dev kstg-netem0": "Error: Specified qdisc kind is unknown."}}
	n := &NetConditions{Client: client, Records: records, Node: "a-1", Rules: &RuleApplier{Device: "stage0", Run: host.run}, Resync: time.Hour, PublishEvery: time.Second, Log: &log}

	ctx, cancel := context.WithCancel(context.Background())
	meshDone := make(chan error, 1)
	go func() { meshDone <- m.Run(ctx) }()
	for round := 1; round <= 2; round++ {
		loopCtx, stopLoop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- n.Run(loopCtx) }()
		waitFor(t, &log, "no network conditions for this node", round)
		stopLoop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, &log, "no WireGuard peers to keep", 1)
	cancel()
	if err := <-meshDone; err != nil {
		t.Fatal(err)
	}

	count := map[string]int{}
	for _, a := range client.Actions() {
		if a.GetResource().Resource == "configmaps" {
			count[a.GetVerb()]++
		}
	}
	if count["list"] != 1 || count["watch"] != 1 {
		t.Errorf("ConfigMap requests %v, want one list and one watch", count)
	}
}

// waitFor waits until log holds want at least times times.
func waitFor(t *testing.T, log *syncBuffer, want string, times int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Count(log.String(), want) >= times {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %q; log:\n%s", want, log.String())
		}
	}
}
