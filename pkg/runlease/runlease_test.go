package runlease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestAcquireRefuseTakeOverRelease(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset()
	clock := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	lease := func(identity string) *Lease {
		return &Lease{Client: client, Namespace: "p2p", Name: Name("StatefulSet", "node"), Identity: identity, Duration: 15 * time.Second, Now: now}
	}

	// Free: the first runner takes it (creating the Lease).
	_, first, err := lease("cli A").Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Held and fresh: the second is refused, told who holds it until when.
	_, _, err = lease("controller B").Acquire(ctx)
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != "cli A" || !held.Until.Equal(clock.Add(15*time.Second)) {
		t.Fatalf("second runner: %v, want refused by cli A until +15s", err)
	}
	if !strings.Contains(err.Error(), "the rollout is being driven by cli A (lease p2p/kubectl-stage-rollout-statefulset-node, held until 2026-12-07T12:00:15Z") {
		t.Errorf("refusal: %v", err)
	}
	// The holder itself may take it again (a resume in the same process).
	if _, again, err := lease("cli A").Acquire(ctx); err != nil {
		t.Errorf("the holder taking its own lease again: %v", err)
	} else {
		again.cancel(context.Canceled)
	}
	// The first runner dies: nothing is released, the lease expires.
	first.cancel(context.Canceled)
	<-first.done
	clock = clock.Add(15 * time.Second)
	_, second, err := lease("controller B").Acquire(ctx)
	if err != nil {
		t.Fatalf("taking over an expired lease: %v", err)
	}
	got, err := client.CoordinationV1().Leases("p2p").Get(ctx, Name("StatefulSet", "node"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *got.Spec.HolderIdentity != "controller B" || *got.Spec.LeaseTransitions != 1 {
		t.Errorf("after the takeover: holder %q, transitions %d", *got.Spec.HolderIdentity, *got.Spec.LeaseTransitions)
	}
	// Released: free at once for the next runner, without waiting.
	if err := second.Release(); err != nil {
		t.Fatal(err)
	}
	if _, third, err := lease("cli C").Acquire(ctx); err != nil {
		t.Errorf("after a release: %v", err)
	} else if err := third.Release(); err != nil {
		t.Error(err)
	}
}

func TestName(t *testing.T) {
	if got := Name("DaemonSet", "agent"); got != "kubectl-stage-rollout-daemonset-agent" {
		t.Errorf("Name = %q", got)
	}
	long := Name("Deployment", strings.Repeat("x", 253))
	if len(long) != 253 || long == Name("Deployment", strings.Repeat("x", 252)+"y") {
		t.Errorf("long names must fit and stay apart: %d %q", len(long), long)
	}
}

// A lease whose holder's renewal time is missing is free.
func TestHolderOf(t *testing.T) {
	who := "x"
	if h, _ := holderOf(&coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: &who}}); h != "" {
		t.Errorf("holderOf without renewTime = %q", h)
	}
}
