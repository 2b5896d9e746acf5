package conflict

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

func TestRetry(t *testing.T) {
	conflict := apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "kubectl-stage-ipam", errors.New("the object has been modified"))
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "configmaps"}, "kubectl-stage-ipam", errors.New("no"))
	fast := Policy{Timeout: time.Hour, Initial: time.Microsecond, Max: 10 * time.Microsecond}
	tests := []struct {
		name         string
		policy       Policy
		conflicts    int   // how many attempts conflict before result
		result       error // what the attempt after them returns
		wantAttempts int
		check        func(t *testing.T, err error)
	}{
		{name: "succeeds at once", policy: fast, wantAttempts: 1, check: noError},
		// More attempts than a count-based backoff with a cap allows (about 18).
		{name: "succeeds after many conflicts", policy: fast, conflicts: 300, wantAttempts: 301, check: noError},
		{name: "another error ends it at once", policy: fast, conflicts: 2, result: forbidden, wantAttempts: 3, check: func(t *testing.T, err error) {
			if !apierrors.IsForbidden(err) {
				t.Errorf("error %v, want the Forbidden itself", err)
			}
		}},
		{name: "contention until the timeout", policy: Policy{Timeout: 0, Initial: time.Microsecond, Max: time.Microsecond}, conflicts: 1000, wantAttempts: 1, check: func(t *testing.T, err error) {
			var contention *ContentionError
			if !errors.As(err, &contention) || contention.Object != "configmap kubectl-stage-system/kubectl-stage-ipam" || contention.Attempts != 1 {
				t.Fatalf("error %#v, want a ContentionError for the ipam configmap after 1 attempt", err)
			}
			if !apierrors.IsConflict(err) {
				t.Error("the contention error hides the conflict")
			}
			want := "other writers kept changing configmap kubectl-stage-system/kubectl-stage-ipam at the same time; run the command again"
			if msg := err.Error(); !strings.Contains(msg, want) {
				t.Errorf("message %q lacks %q", msg, want)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attempts := 0
			err := tt.policy.Retry(context.Background(), "configmap kubectl-stage-system/kubectl-stage-ipam", func() error {
				attempts++
				if attempts <= tt.conflicts {
					return conflict
				}
				return tt.result
			})
			if attempts != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", attempts, tt.wantAttempts)
			}
			tt.check(t, err)
		})
	}
}

func TestRetryStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := Policy{Timeout: time.Hour, Initial: time.Hour, Max: time.Hour}.Retry(ctx, "x", func() error {
		return apierrors.NewConflict(schema.GroupResource{Resource: "configmaps"}, "x", errors.New("modified"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
}

func noError(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("error %v", err)
	}
}
