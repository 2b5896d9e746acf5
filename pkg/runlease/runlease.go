// Package runlease lets exactly one runner drive a rollout at a time: a
// coordination.k8s.io Lease per rollout, taken before the runner's first
// write and renewed while it works. A runner that dies stops renewing; the
// next one takes the lease over once it has expired, and continues from the
// state stored on the workload. A runner that loses its lease (it could not
// renew in time) stops at once.
//
// Expiry is judged on the observer's own clock, as client-go's leader
// election does: a runner remembers when it last saw a Lease record change
// and considers the lease expired only when its duration has passed since
// then without a change. The holder's renewTime is another machine's clock;
// comparing it with ours would let a skewed clock take a live runner's lease.
package runlease

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
)

// DefaultDuration is how long a lease lasts without renewal: how long a
// crashed runner's rollout waits before another runner may take it over.
const DefaultDuration = 15 * time.Second

// Name is the Lease of the rollout of workload KIND/NAME.
func Name(kind, name string) string {
	n := "kubectl-stage-rollout-" + strings.ToLower(kind) + "-" + name
	if len(n) <= 253 {
		return n
	}
	// Object names are at most 253 characters; a hash keeps long ones apart.
	sum := sha256.Sum256([]byte(n))
	return n[:253-17] + "-" + hex.EncodeToString(sum[:8])
}

// HeldError is a lease another runner holds.
type HeldError struct {
	Namespace, Lease string
	Holder           string
	// Until is when the lease expires unless its holder renews it, on
	// this runner's clock.
	Until time.Time
	// changed: the record changed since this runner last read it.
	changed bool
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("the rollout is being driven by %s (lease %s/%s, held until %s unless renewed); follow it with kubectl stage rollout status -w, or pause it with kubectl stage rollout pause",
		e.Holder, e.Namespace, e.Lease, e.Until.UTC().Format(time.RFC3339))
}

// ErrLost is the cause of a held lease's context when it was lost.
var ErrLost = errors.New("lost the rollout's lease to another runner (it could not be renewed in time); the other runner continues the rollout")

// Lease is one rollout's lease as one runner sees it.
type Lease struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string
	// Identity names the runner to others (shown when they are refused).
	Identity string
	Duration time.Duration
	// Now is this runner's clock; time.Now's monotonic reading makes
	// durations immune to wall-clock steps.
	Now func() time.Time
	// Observed remembers the records this runner has seen; a runner that
	// tries again later (the controller) keeps one across attempts. Nil:
	// this attempt has no memory (a CLI), so it watches the record for up
	// to Duration: a change means the holder lives and it is refused, no
	// change means the holder is gone and it takes the lease.
	Observed *Observed
	// After is how Acquire waits while it watches a held lease
	// (time.After when nil); tests inject a fake clock's.
	After func(time.Duration) <-chan time.Time
	// Waiting is told, when not nil, that Acquire waits to see whether
	// holder still renews the lease.
	Waiting func(holder string)
}

// record is what a change of shows that its holder is alive.
type record struct {
	holder, renewTime, resourceVersion string
}

func recordOf(lease *coordinationv1.Lease) record {
	r := record{resourceVersion: lease.ResourceVersion}
	if lease.Spec.HolderIdentity != nil {
		r.holder = *lease.Spec.HolderIdentity
	}
	if lease.Spec.RenewTime != nil {
		r.renewTime = lease.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	return r
}

// Observed is one runner's memory of the lease records it has seen and
// when, on its own clock. It is safe for concurrent use. It holds only the
// leases this runner looked at lately (see forgotten): a controller that
// sees many rollouts over its life does not keep one entry per rollout
// forever.
type Observed struct {
	mu   sync.Mutex
	seen map[string]observation
}

type observation struct {
	record record
	// at is when this runner first saw record, unchanged since.
	at time.Time
	// looked is when this runner last looked at the lease.
	looked time.Time
	// lasts is how long the record says the lease lasts without renewal.
	lasts time.Duration
}

// forgotten reports whether an observation is no longer worth keeping at
// now: the lease was not looked at for twice the duration it declares and
// a minute more.
//
// Forgetting is always safe: a record seen again after it is forgotten
// counts from then, so a takeover can only come later, never earlier. It
// costs a whole duration, though, if the runner still waits on the lease.
// A runner that waits looks again when the lease would expire (the
// controller requeues the rollout then, a second after), so within the
// declared duration of its last look; the minute covers its work queue.
// What is not looked at for longer is a rollout this runner no longer
// waits on: it ended, its workload is gone, or another runner finished it.
//
// It must count from the last look, not from when the record was first
// seen: a record unchanged for long is exactly what proves its holder
// dead; forgetting it by that age would restart the count at every look,
// and a dead holder's rollout would never be taken over.
func (o observation) forgotten(now time.Time) bool {
	return now.Sub(o.looked) > 2*o.lasts+time.Minute
}

// since records that key's record is r, declaring that it lasts lasts, as
// of now, and returns when this runner first saw r unchanged, and whether
// r replaced a different record it had seen before. It forgets the other
// leases not looked at lately.
func (o *Observed) since(key string, r record, lasts time.Duration, now time.Time) (time.Time, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]observation{}
	}
	// key itself is kept however long ago it was looked at: an unchanged
	// record (its resourceVersion too) proves no renewal since it was first
	// seen, gaps included.
	maps.DeleteFunc(o.seen, func(other string, seen observation) bool { return other != key && seen.forgotten(now) })
	prev, ok := o.seen[key]
	if ok && prev.record == r {
		prev.looked, prev.lasts = now, lasts
		o.seen[key] = prev
		return prev.at, false
	}
	o.seen[key] = observation{record: r, at: now, looked: now, lasts: lasts}
	return now, ok
}

// Held is a lease this runner holds.
type Held struct {
	l     *Lease
	lease *coordinationv1.Lease
	// renewed is when this runner last wrote the lease, on its own clock.
	renewed time.Time
	cancel  context.CancelCauseFunc
	done    chan struct{}
}

// Acquire takes the lease if it is free, expired or already this runner's;
// a lease another runner holds is a *HeldError. The returned context ends
// when ctx does or when the lease is lost; Release ends it too.
func (l *Lease) Acquire(ctx context.Context) (context.Context, *Held, error) {
	observed, patient := l.Observed, l.Observed == nil
	if patient {
		observed = &Observed{}
	}
	for {
		held, err := l.try(ctx, observed)
		var busy *HeldError
		if !patient || !errors.As(err, &busy) {
			if err != nil {
				return nil, nil, fmt.Errorf("taking lease %s/%s: %w", l.Namespace, l.Name, err)
			}
			runCtx, cancel := context.WithCancelCause(ctx)
			held.cancel, held.done = cancel, make(chan struct{})
			go held.renew(runCtx)
			return runCtx, held, nil
		}
		if busy.changed {
			// Seen renewing while we watched: its holder is alive.
			return nil, nil, fmt.Errorf("taking lease %s/%s: %w", l.Namespace, l.Name, err)
		}
		if l.Waiting != nil {
			l.Waiting(busy.Holder)
			l.Waiting = nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-l.after(min(l.Duration/5, busy.Until.Sub(l.Now()))):
		}
	}
}

// try takes the lease unless another runner holds it and this runner has
// seen its record change within Duration.
func (l *Lease) try(ctx context.Context, observed *Observed) (*Held, error) {
	held := &Held{l: l}
	key := l.Namespace + "/" + l.Name
	err := conflict.Retry(ctx, "lease "+key, func() error {
		leases := l.Client.CoordinationV1().Leases(l.Namespace)
		current, err := leases.Get(ctx, l.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			held.renewed = l.Now()
			held.lease, err = leases.Create(ctx, l.take(&coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace, Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue}},
			}), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				// Another runner created it first: read it again, as on a conflict.
				return apierrors.NewConflict(coordinationv1.Resource("leases"), l.Name, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		if holder := heldBy(current); holder != "" && holder != l.Identity {
			now, lasts := l.Now(), declared(current, l.Duration)
			first, changed := observed.since(key, recordOf(current), lasts, now)
			if until := first.Add(lasts); now.Before(until) {
				return &HeldError{Namespace: l.Namespace, Lease: l.Name, Holder: holder, Until: until, changed: changed}
			}
		}
		// Free, ours, or unchanged for a whole Duration: take it. The
		// resourceVersion guards against a renewal that lands meanwhile.
		held.renewed = l.Now()
		held.lease, err = leases.Update(ctx, l.take(current), metav1.UpdateOptions{})
		return err
	})
	return held, err
}

func (l *Lease) after(d time.Duration) <-chan time.Time {
	if l.After != nil {
		return l.After(d)
	}
	return time.After(d)
}

// take makes lease this runner's, for Duration from now.
func (l *Lease) take(lease *coordinationv1.Lease) *coordinationv1.Lease {
	out := lease.DeepCopy()
	now := metav1.NewMicroTime(l.Now())
	seconds := int32(l.Duration / time.Second)
	if out.Spec.HolderIdentity == nil || *out.Spec.HolderIdentity != l.Identity {
		transitions := int32(0)
		if out.Spec.LeaseTransitions != nil {
			transitions = *out.Spec.LeaseTransitions + 1
		}
		out.Spec.LeaseTransitions = &transitions
		out.Spec.AcquireTime = &now
	}
	out.Spec.HolderIdentity = &l.Identity
	out.Spec.LeaseDurationSeconds = &seconds
	out.Spec.RenewTime = &now
	return out
}

// declared is how long the lease's holder said it lasts without renewal.
func declared(lease *coordinationv1.Lease, otherwise time.Duration) time.Duration {
	if lease.Spec.LeaseDurationSeconds == nil {
		return otherwise
	}
	return time.Duration(*lease.Spec.LeaseDurationSeconds) * time.Second
}

// heldBy is a lease's holder; a released lease (no renewal time) has none.
func heldBy(lease *coordinationv1.Lease) string {
	if lease.Spec.HolderIdentity == nil || lease.Spec.RenewTime == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// renew keeps the lease a third of its duration ahead; when a renewal
// fails until the lease would have expired, or another runner took it, the
// run's context ends with ErrLost.
func (h *Held) renew(ctx context.Context) {
	defer close(h.done)
	period := h.l.Duration / 3
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(period):
		}
		until := h.renewed.Add(h.l.Duration)
		for {
			err := h.renewOnce(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, ErrLost) || !h.l.Now().Before(until) {
				h.cancel(ErrLost)
				return
			}
			// A passing API server error: try again soon, within the lease.
			select {
			case <-ctx.Done():
				return
			case <-time.After(period / 4):
			}
		}
	}
}

func (h *Held) renewOnce(ctx context.Context) error {
	leases := h.l.Client.CoordinationV1().Leases(h.l.Namespace)
	// Others see the renewal no earlier than it is sent: counting from
	// here, this runner gives the lease up before anyone may take it.
	sent := h.l.Now()
	updated, err := leases.Update(ctx, h.l.take(h.lease), metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		// Someone else wrote it: still ours only if they did not take it.
		current, getErr := leases.Get(ctx, h.l.Name, metav1.GetOptions{})
		if getErr != nil {
			return getErr
		}
		if heldBy(current) != h.l.Identity {
			return ErrLost
		}
		h.lease = current
		return err
	}
	if err != nil {
		return err
	}
	h.lease, h.renewed = updated, sent
	return nil
}

// Release stops renewing and frees the lease, so that the next runner need
// not wait for it to expire. Not releasing is safe: it expires.
func (h *Held) Release() error {
	h.cancel(context.Canceled)
	<-h.done
	free := h.lease.DeepCopy()
	free.Spec.HolderIdentity = nil
	free.Spec.RenewTime = nil
	// Released even when the runner's own context has ended.
	_, err := h.l.Client.CoordinationV1().Leases(h.l.Namespace).Update(context.Background(), free, metav1.UpdateOptions{})
	if apierrors.IsConflict(err) {
		// Taken over meanwhile: it is not ours to free.
		return nil
	}
	if err != nil {
		return fmt.Errorf("releasing lease %s/%s (it expires by itself in %s): %w", h.l.Namespace, h.l.Name, h.l.Duration, err)
	}
	return nil
}
