package rollout

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
)

// sameRollout reports whether two reads of the state are of the same
// rollout at the same point.
func sameRollout(a, b *State) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Revision == b.Revision && a.Phase == b.Phase && a.Started.Equal(&b.Started) && len(a.Done) == len(b.Done)
}

// commit re-reads the workload, applies change to it and its state, and
// writes both in one optimistic update, retrying on conflict (the workload's
// own controller writes its status meanwhile, so conflicts are routine).
func (r *Roller) commit(ctx context.Context, change func(*State, History) (*State, History, error)) error {
	return conflict.Retry(ctx, r.w.ref().String(), func() error {
		if err := r.w.get(ctx); err != nil {
			return err
		}
		state, history, err := ReadAnnotations(r.w.meta().Annotations)
		if err != nil {
			return err
		}
		state, history, err = change(state, history)
		if err != nil {
			return err
		}
		if state != nil {
			state.Updated = metav1.NewTime(r.now())
		}
		meta := r.w.meta()
		if meta.Annotations == nil {
			meta.Annotations = map[string]string{}
		}
		if err := writeAnnotations(meta.Annotations, state, history); err != nil {
			return err
		}
		if r.DryRun == kcmdutil.DryRunClient {
			return nil
		}
		return r.w.update(ctx)
	})
}

// commitRunning is commit for the runner of one revision's rollout: if an
// undo or a newer rollout replaced it meanwhile, nothing is written.
func (r *Roller) commitRunning(ctx context.Context, revision int, change func(*State, History) (*State, History, error)) error {
	return r.commit(ctx, func(s *State, h History) (*State, History, error) {
		if s == nil || s.Revision != revision {
			return nil, nil, r.replaced(revision)
		}
		return change(s, h)
	})
}

func (r *Roller) replaced(revision int) error {
	return fmt.Errorf("the rollout of %s to revision %d was replaced by another (see kubectl stage rollout status %s)", r.w.ref(), revision, r.w.ref())
}

func markLatest(h History, revision int, result Phase) History {
	if rev, ok := h.Find(revision); ok {
		rev.Result = result
	}
	return h
}
