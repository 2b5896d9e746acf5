// Package conflict retries optimistic-concurrency updates. Every
// read-modify-write of kubectl-stage's shared state (the address table, the
// site registry, the CRL, a rollout's state) conflicts when another writer
// got there first, and is then read and applied again. The retries are
// bounded by time, not by a count: fifty joins started at once must all get
// their turn however the conflicts fall, and a writer that really cannot
// get through says so, rather than blaming something else.
package conflict

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// Policy bounds the retries.
type Policy struct {
	// Timeout is how long conflicts are retried before giving up.
	Timeout time.Duration
	// Initial is the first delay; each conflict grows it by half, up to Max.
	// Every sleep is jittered (between half and all of the delay) so that
	// writers that collided do not collide again in lockstep.
	Initial, Max time.Duration
}

// Default gives dozens of concurrent writers time to each get through.
var Default = Policy{Timeout: 2 * time.Minute, Initial: 5 * time.Millisecond, Max: 500 * time.Millisecond}

// ContentionError is a write that kept conflicting until the timeout.
type ContentionError struct {
	// Object is what the writers contend for, e.g. "configmap ns/name".
	Object   string
	Attempts int
	Waited   time.Duration
	// Last is the last conflict the API server returned.
	Last error
}

func (e *ContentionError) Error() string {
	return fmt.Sprintf("gave up after %d attempts in %s: other writers kept changing %s at the same time; run the command again (the last conflict: %v)",
		e.Attempts, e.Waited.Round(time.Millisecond), e.Object, e.Last)
}

// Unwrap lets apierrors.IsConflict see the conflict.
func (e *ContentionError) Unwrap() error { return e.Last }

// Retry runs update until it succeeds, fails with an error that is not a
// conflict (returned as is), the policy's timeout passes (a
// *ContentionError), or ctx ends.
func (p Policy) Retry(ctx context.Context, object string, update func() error) error {
	start := time.Now()
	delay := p.Initial
	for attempt := 1; ; attempt++ {
		err := update()
		if err == nil || !apierrors.IsConflict(err) {
			return err
		}
		waited := time.Since(start)
		if waited >= p.Timeout {
			return &ContentionError{Object: object, Attempts: attempt, Waited: waited, Last: err}
		}
		sleep := delay/2 + rand.N(delay/2+1)
		timer := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w while retrying a conflicting update of %s", ctx.Err(), object)
		case <-timer.C:
		}
		delay = min(delay+delay/2, p.Max)
	}
}

// Retry retries with the Default policy.
func Retry(ctx context.Context, object string, update func() error) error {
	return Default.Retry(ctx, object, update)
}
