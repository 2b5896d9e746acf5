package runlease

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
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
	// Each runner keeps its memory of the records it saw across attempts,
	// as the controller does.
	memory := map[string]*Observed{}
	lease := func(identity string) *Lease {
		if memory[identity] == nil {
			memory[identity] = &Observed{}
		}
		return &Lease{Client: client, Namespace: "p2p", Name: Name("StatefulSet", "node"), Identity: identity, Duration: 15 * time.Second, Now: now, Observed: memory[identity]}
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
	// The first runner dies: nothing is released, the lease expires
	// 15s after the second runner first saw it unchanged.
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
func TestHeldBy(t *testing.T) {
	who := "x"
	if h := heldBy(&coordinationv1.Lease{Spec: coordinationv1.LeaseSpec{HolderIdentity: &who}}); h != "" {
		t.Errorf("heldBy without renewTime = %q", h)
	}
}

// fakeClock is the observer's clock; after advances it instead of sleeping.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
	// onWait runs at each wait, before the clock moves (a holder renewing).
	onWait func(d time.Duration)
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	if c.onWait != nil {
		c.onWait(d)
	}
	c.advance(d)
	ch := make(chan time.Time, 1)
	ch <- c.Now()
	return ch
}

// holdLease makes the fake cluster's lease "l" held by holder, renewed at
// renewed by the holder's clock, declaring 15s.
func holdLease(t *testing.T, client *fake.Clientset, holder string, renewed time.Time) {
	t.Helper()
	holdNamedLease(t, client, "l", holder, renewed)
}

// holdNamedLease is holdLease for the lease name.
func holdNamedLease(t *testing.T, client *fake.Clientset, name, holder string, renewed time.Time) {
	t.Helper()
	ctx := context.Background()
	seconds := int32(15)
	at := metav1.NewMicroTime(renewed)
	lease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "p2p"},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &at, LeaseDurationSeconds: &seconds},
	}
	leases := client.CoordinationV1().Leases("p2p")
	if _, err := leases.Get(ctx, name, metav1.GetOptions{}); err == nil {
		_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := leases.Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// Expiry is judged on the observer's clock from when it saw the record
// change, whatever the holder's clock says: a holder whose clock is an
// hour behind keeps its lease while it renews, and one whose clock is an
// hour ahead loses it 15s after it stopped.
func TestExpiryOnTheObserversClock(t *testing.T) {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, skew := range []time.Duration{-time.Hour, time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			ctx := context.Background()
			client := fake.NewClientset()
			clock := &fakeClock{now: start}
			observer := &Lease{Client: client, Namespace: "p2p", Name: "l", Identity: "controller B", Duration: 15 * time.Second, Now: clock.Now, Observed: &Observed{}}
			refusedUntil := func(want time.Time) {
				t.Helper()
				_, _, err := observer.Acquire(ctx)
				var held *HeldError
				if !errors.As(err, &held) || held.Holder != "cli A" || !held.Until.Equal(want) {
					t.Fatalf("at +%s: %v, want refused by cli A until +%s", clock.Now().Sub(start), err, want.Sub(start))
				}
			}
			holdLease(t, client, "cli A", clock.Now().Add(skew))
			refusedUntil(start.Add(15 * time.Second))
			// The holder renews every 5s by its own clock: never expired.
			for i := 1; i <= 6; i++ {
				clock.advance(5 * time.Second)
				holdLease(t, client, "cli A", clock.Now().Add(skew))
				refusedUntil(clock.Now().Add(15 * time.Second))
			}
			// It stops renewing: 14.999s later (by our clock) still held,
			// 15s later free.
			stopped := clock.Now()
			clock.advance(15*time.Second - time.Millisecond)
			refusedUntil(stopped.Add(15 * time.Second))
			clock.advance(time.Millisecond)
			_, held, err := observer.Acquire(ctx)
			if err != nil {
				t.Fatalf("15s after the last renewal seen: %v", err)
			}
			if err := held.Release(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A runner with no memory (a CLI) watches a held lease: a holder seen
// renewing refuses it; one that does not renew for the lease's duration
// is gone, and the lease is taken over.
func TestAcquireWithoutMemoryWatches(t *testing.T) {
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	ctx := context.Background()

	t.Run("holder alive", func(t *testing.T) {
		client := fake.NewClientset()
		clock := &fakeClock{now: start}
		holdLease(t, client, "controller B", start.Add(-time.Hour))
		waits := 0
		clock.onWait = func(time.Duration) {
			waits++
			if waits == 2 {
				holdLease(t, client, "controller B", clock.Now().Add(-time.Hour))
			}
		}
		var told []string
		cli := &Lease{Client: client, Namespace: "p2p", Name: "l", Identity: "cli A", Duration: 15 * time.Second, Now: clock.Now, After: clock.After,
			Waiting: func(holder string) { told = append(told, holder) }}
		_, _, err := cli.Acquire(ctx)
		var held *HeldError
		if !errors.As(err, &held) || held.Holder != "controller B" {
			t.Fatalf("Acquire = %v, want refused by controller B", err)
		}
		if !slices.Equal(told, []string{"controller B"}) || waits != 2 {
			t.Errorf("told %q after %d waits, want once after 2", told, waits)
		}
	})

	t.Run("holder gone", func(t *testing.T) {
		client := fake.NewClientset()
		clock := &fakeClock{now: start}
		// The dead holder's clock is an hour ahead: its renewTime is no
		// reason to wait an hour.
		holdLease(t, client, "controller B", start.Add(time.Hour))
		cli := &Lease{Client: client, Namespace: "p2p", Name: "l", Identity: "cli A", Duration: 15 * time.Second, Now: clock.Now, After: clock.After}
		_, held, err := cli.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if waited := clock.Now().Sub(start); waited != 15*time.Second {
			t.Errorf("took the lease after %s, want 15s", waited)
		}
		if err := held.Release(); err != nil {
			t.Fatal(err)
		}
	})
}

// An observation is forgotten only when its lease was not looked at for
// twice the duration it declares and a minute, however long ago its record
// was first seen.
func TestObservationForgotten(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name      string
		at        time.Time
		looked    time.Time
		lasts     time.Duration
		forgotten bool
	}{
		{"looked at now", now, now, 15 * time.Second, false},
		{"looked at when the lease would expire, as a waiting runner does", now.Add(-16 * time.Second), now.Add(-16 * time.Second), 15 * time.Second, false},
		{"unchanged for an hour, looked at a lease ago: the proof of a dead holder", now.Add(-time.Hour), now.Add(-15 * time.Second), 15 * time.Second, false},
		{"not looked at for exactly the limit", now.Add(-90 * time.Second), now.Add(-90 * time.Second), 15 * time.Second, false},
		{"not looked at for just over the limit", now.Add(-90*time.Second - time.Nanosecond), now.Add(-90*time.Second - time.Nanosecond), 15 * time.Second, true},
		{"a long lease is kept longer", now.Add(-2 * time.Hour), now.Add(-2 * time.Hour), time.Hour, false},
		{"a long lease, past its limit", now.Add(-3 * time.Hour), now.Add(-2*time.Hour - time.Minute - time.Second), time.Hour, true},
		{"a lease declaring 0s, after a minute", now.Add(-time.Hour), now.Add(-time.Minute - time.Second), 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := observation{at: tt.at, looked: tt.looked, lasts: tt.lasts}
			if got := o.forgotten(now); got != tt.forgotten {
				t.Errorf("forgotten = %v, want %v", got, tt.forgotten)
			}
		})
	}
}

// A controller's memory keeps the leases it waits on and forgets the ones
// it no longer looks at: "done"'s rollout ended (its runner never looked
// again), while "dead"'s holder died and the runner waits on it, then
// takes it over 15s after first seeing it, as if nothing were forgotten.
func TestObservedForgetsLeasesNoLongerLookedAt(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	client := fake.NewClientset()
	clock := &fakeClock{now: start}
	memory := &Observed{}
	lease := func(name string) *Lease {
		return &Lease{Client: client, Namespace: "p2p", Name: name, Identity: "controller B", Duration: 15 * time.Second, Now: clock.Now, Observed: memory}
	}
	refused := func(name string) {
		t.Helper()
		var held *HeldError
		if _, _, err := lease(name).Acquire(ctx); !errors.As(err, &held) {
			t.Fatalf("%s at +%s: %v, want refused", name, clock.Now().Sub(start), err)
		}
	}
	remembered := func() []string {
		memory.mu.Lock()
		defer memory.mu.Unlock()
		return slices.Sorted(maps.Keys(memory.seen))
	}

	holdNamedLease(t, client, "done", "cli A", start)
	refused("done")
	// "dead" is first seen 80s later; its holder never renews.
	clock.advance(80 * time.Second)
	holdNamedLease(t, client, "dead", "cli C", clock.Now())
	refused("dead")
	if got := remembered(); !slices.Equal(got, []string{"p2p/dead", "p2p/done"}) {
		t.Fatalf("remembered %v at +80s", got)
	}
	// Looked at again 14s later, when "done" was last looked at 94s ago:
	// "done" is forgotten, "dead" still refused (first seen 14s ago).
	clock.advance(14 * time.Second)
	refused("dead")
	if got := remembered(); !slices.Equal(got, []string{"p2p/dead"}) {
		t.Errorf("remembered %v at +94s, want only p2p/dead", got)
	}
	clock.advance(time.Second)
	_, held, err := lease("dead").Acquire(ctx)
	if err != nil {
		t.Fatalf("taking over dead's lease 15s after first seeing it: %v", err)
	}
	if err := held.Release(); err != nil {
		t.Fatal(err)
	}
}
