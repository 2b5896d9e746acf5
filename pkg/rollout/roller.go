package rollout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
	"github.com/kubectl-stage/kubectl-stage/pkg/runlease"
)

// Plan is how the sites are grouped into waves and gated.
type Plan struct {
	Order     []string
	Waves     []string
	MaxAtOnce int
	Gates     Gates
}

// ErrPaused is returned when the rollout stopped because someone paused it.
var ErrPaused = errors.New("rollout paused")

// Roller runs rollouts of one app.
type Roller struct {
	client kubernetes.Interface
	w      workload
	// Out receives progress lines as the rollout goes.
	Out io.Writer
	// DryRun is kubectl's strategy: under client the state is planned and
	// checked but not written; under server client must send writes with
	// dryRun=All (the command layer's does). Either way a rollout, resume or
	// undo stops after its first write instead of running waves whose pods
	// would never change.
	DryRun kcmdutil.DryRunStrategy
	// Detach makes Start and Undo store the plan and return: the in-cluster
	// runner drives the waves.
	Detach bool
	// Runner names this runner to others, on the rollout's lease.
	Runner string
	// LeaseDuration is how long the lease outlives this runner if it
	// dies without releasing it.
	LeaseDuration time.Duration
	// Leases is this runner's memory of the lease records it has seen, kept
	// across rollouts by a runner that tries again (the controller). Nil (a
	// CLI): a held lease is watched until its holder renews it (refused)
	// or LeaseDuration passes without (taken over).
	Leases *runlease.Observed
	now    func() time.Time
}

// New finds the app's workload.
func New(ctx context.Context, client kubernetes.Interface, ref Ref, out io.Writer) (*Roller, error) {
	w, err := newWorkload(ctx, client, ref)
	if err != nil {
		return nil, err
	}
	return &Roller{client: client, w: w, Out: out, Runner: cliRunner(), LeaseDuration: runlease.DefaultDuration, now: time.Now}, nil
}

// cliRunner names a runner that is a kubectl-stage command, so that a user
// refused by it knows whose it is.
func cliRunner() string {
	host, err := os.Hostname()
	if err != nil {
		host = "unknown host"
	}
	who := os.Getenv("USER")
	if who == "" {
		who = "unknown user"
	}
	return fmt.Sprintf("kubectl stage rollout (%s on %s, pid %d)", who, host, os.Getpid())
}

// exclusively runs work while holding the rollout's lease, so that no
// other runner acts on the rollout meanwhile. The lease is taken before
// work's first write: when another live runner holds it, nothing is
// written and the error names that runner.
func (r *Roller) exclusively(ctx context.Context, work func(context.Context) (*Result, error)) (*Result, error) {
	if r.DryRun != kcmdutil.DryRunNone {
		// A dry run writes nothing that another runner could contend for.
		return work(ctx)
	}
	lease := &runlease.Lease{
		Client: r.client, Namespace: r.w.ref().Namespace, Name: runlease.Name(r.w.ref().Kind, r.w.ref().Name),
		Identity: r.Runner, Duration: r.LeaseDuration, Now: r.now, Observed: r.Leases,
		Waiting: func(holder string) {
			fmt.Fprintf(r.Out, "%s holds the rollout's lease; waiting up to %s for it to renew it (it is alive) or not (it is gone and this run takes over)\n", holder, r.LeaseDuration)
		},
	}
	runCtx, held, err := lease.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	res, err := work(runCtx)
	if relErr := held.Release(); relErr != nil {
		err = errors.Join(err, relErr)
	}
	return res, err
}

// Ref is the workload being rolled out.
func (r *Roller) Ref() Ref { return r.w.ref() }

// Result is what a rollout (or `status`) reports.
type Result struct {
	Ref      Ref            `json:"ref"`
	State    *State         `json:"state,omitempty"`
	Sites    []SiteProgress `json:"sites"`
	Timings  []WaveTiming   `json:"timings,omitempty"`
	NoChange bool           `json:"noChange,omitempty"`
}

// WaveTiming records how long a wave waited for its pods and how long it
// took in all (the difference is the rollout's own work and health checks).
type WaveTiming struct {
	Sites     []string      `json:"sites"`
	PodsReady time.Duration `json:"podsReady"`
	Total     time.Duration `json:"total"`
}

// State returns the stored rollout state and history.
func (r *Roller) State(ctx context.Context) (*State, History, error) {
	if err := r.w.get(ctx); err != nil {
		return nil, nil, err
	}
	return ReadAnnotations(r.w.meta().Annotations)
}

// currentTemplate is the revision the app runs outside of a rollout.
func (r *Roller) currentTemplate(history History) *corev1.PodTemplateSpec {
	if r.w.ref().Kind == KindDeployment && len(history) > 0 {
		// The original Deployment keeps its old template until the rollout
		// completes; the last revision is what its sites run.
		return &history[len(history)-1].Spec
	}
	return r.w.template()
}

// Start begins a rollout to the template that edit makes of the current one.
func (r *Roller) Start(ctx context.Context, edit func(*corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error), cause string, plan Plan) (*Result, error) {
	state, history, err := r.State(ctx)
	if err != nil {
		return nil, err
	}
	if state != nil && state.Phase != PhaseComplete {
		return nil, r.unfinished(state)
	}
	current := r.currentTemplate(history).DeepCopy()
	if len(history) == 0 {
		history = history.Record(Revision{Number: 1, Cause: "found before the first rollout", Images: Images(current), Time: metav1.NewTime(r.now()), Result: PhaseComplete, Spec: *current})
	} else if last := history[len(history)-1]; !SameTemplate(&last.Spec, current) {
		history = history.Record(Revision{Number: history.Latest() + 1, Cause: "changed outside kubectl stage rollout", Images: Images(current), Time: metav1.NewTime(r.now()), Result: PhaseComplete, Spec: *current})
	}
	unstamped := current.DeepCopy()
	delete(unstamped.Annotations, api.AnnotationRevision)
	next, err := edit(unstamped)
	if err != nil {
		return nil, err
	}
	if SameTemplate(next, unstamped) {
		return &Result{Ref: r.w.ref(), NoChange: true}, nil
	}
	number := history.Latest() + 1
	target := StampRevision(next, number)
	history = history.Record(Revision{Number: number, Cause: cause, Images: Images(target), Time: metav1.NewTime(r.now()), Result: PhaseProgressing, Spec: *target})
	return r.begin(ctx, target, state, history, plan, "", r.exclusively)
}

// Undo returns every site to an earlier revision (0: the one before the
// current), site by site like any rollout.
func (r *Roller) Undo(ctx context.Context, toRevision int, plan Plan) (*Result, error) {
	return r.undo(ctx, toRevision, plan, "", r.exclusively)
}

// locker runs work as the only runner of the rollout.
type locker func(ctx context.Context, work func(context.Context) (*Result, error)) (*Result, error)

// undo is Undo under lock; a cause (an automatic undo's failure) is
// recorded in the history and the state, and marks the current revision
// Failed.
func (r *Roller) undo(ctx context.Context, toRevision int, plan Plan, cause string, lock locker) (*Result, error) {
	state, history, err := r.State(ctx)
	if err != nil {
		return nil, err
	}
	if len(history) < 2 {
		return nil, fmt.Errorf("%s has no earlier revision to return to; see kubectl stage rollout history %s", r.w.ref(), r.w.ref())
	}
	current := history[len(history)-1].Number
	if toRevision == 0 {
		toRevision = history[len(history)-2].Number
	}
	rev, ok := history.Find(toRevision)
	if !ok {
		return nil, fmt.Errorf("revision %d is not in the history of %s; see kubectl stage rollout history %s", toRevision, r.w.ref(), r.w.ref())
	}
	if toRevision == current && (state == nil || state.Phase == PhaseComplete) {
		return &Result{Ref: r.w.ref(), NoChange: true}, nil
	}
	target := rev.Spec.DeepCopy()
	undone := *rev
	if cause != "" {
		// An undo of a failure: the failed revision is marked in the same
		// write that starts the undo, so that no crash can leave it failed
		// without its undo.
		history = markLatest(history, current, PhaseFailed)
	}
	undone.Cause = cmp.Or(cause, fmt.Sprintf("undo of revision %d", current))
	undone.Time = metav1.NewTime(r.now())
	undone.Result = PhaseProgressing
	history = history.Record(undone)
	return r.begin(ctx, target, state, history, plan, cause, lock)
}

// begin plans the waves from where the pods are now, writes the target and
// the state in one update, and runs the waves. cause says why a runner
// began it by itself (an automatic undo), for the state to record.
func (r *Roller) begin(ctx context.Context, target *corev1.PodTemplateSpec, previous *State, history History, plan Plan, cause string, lock locker) (*Result, error) {
	pods, loc, err := r.snapshot(ctx, previous)
	if err != nil {
		return nil, err
	}
	desired := map[string]int{}
	for site, at := range IndexPods(pods, loc, PodRevision(target.ObjectMeta)) {
		if site == "" {
			return nil, fmt.Errorf("pod %s has no site yet (not scheduled, or its node has no %s label); wait for it or fix its node, then run the rollout again", at.Live()[0].Name, api.LabelSite)
		}
		desired[site] = at.Len()
	}
	sites := make([]string, 0, len(desired))
	for s := range desired {
		sites = append(sites, s)
	}
	waves, err := PlanWaves(sites, plan.Order, plan.Waves, plan.MaxAtOnce)
	if err != nil {
		return nil, err
	}
	now := metav1.NewTime(r.now())
	state := &State{
		Revision: PodRevision(target.ObjectMeta), Phase: PhaseProgressing, Waves: waves,
		Desired: desired, Placed: loc.Placed, Gates: plan.Gates, Started: now, Updated: now, Cause: cause,
	}
	if previous != nil && previous.Phase != PhaseComplete {
		// An undo over an unfinished rollout: the workload's own strategy
		// is the one that rollout saved, not the OnDelete it set.
		state.Strategy = previous.Strategy
	}
	if r.Detach {
		// No lease: the runner that will drive it takes one.
		return r.write(ctx, target, previous, state, history, loc)
	}
	return lock(ctx, func(ctx context.Context) (*Result, error) {
		return r.write(ctx, target, previous, state, history, loc)
	})
}

// write stores the planned rollout and runs it.
func (r *Roller) write(ctx context.Context, target *corev1.PodTemplateSpec, previous, state *State, history History, loc Locator) (*Result, error) {
	err := r.commit(ctx, func(stored *State, _ History) (*State, History, error) {
		// Another user may have started (or undone) a rollout since this
		// one was planned: writing over it would lose an update.
		if !sameRollout(stored, previous) {
			return nil, nil, fmt.Errorf("another rollout of %s started while this one was being planned; see kubectl stage rollout status %s", r.w.ref(), r.w.ref())
		}
		if err := r.w.setTarget(target, state); err != nil {
			return nil, nil, err
		}
		return state, history, nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.Out, "rolling %s out to revision %d (%s) in %d waves: %s%s\n",
		r.w.ref(), state.Revision, Images(target), len(state.Waves), describeWaves(state.Waves), dryrun.Suffix(r.DryRun))
	if r.DryRun != kcmdutil.DryRunNone || r.Detach {
		return &Result{Ref: r.w.ref(), State: state}, nil
	}
	return r.run(ctx, target, loc)
}

// NeedsRunner reports whether a stored rollout has steps left for a runner:
// it is progressing, or paused with a wave in flight that must finish.
func NeedsRunner(s *State) bool {
	return s != nil && (s.Phase == PhaseProgressing || (s.Phase == PhasePaused && len(s.Moving) > 0))
}

// Continue drives a stored rollout from where it stands, as the in-cluster
// runner does, without changing its phase (unlike Resume). A live runner
// holding it is a *runlease.HeldError.
func (r *Roller) Continue(ctx context.Context) (*Result, error) {
	return r.exclusively(ctx, func(ctx context.Context) (*Result, error) {
		// Read under the lease: the previous runner may have moved it on.
		state, history, err := r.State(ctx)
		if err != nil {
			return nil, err
		}
		if !NeedsRunner(state) {
			return &Result{Ref: r.w.ref(), State: state}, nil
		}
		rev, ok := history.Find(state.Revision)
		if !ok {
			return nil, fmt.Errorf("revision %d is missing from the history of %s; undo or start a new rollout", state.Revision, r.w.ref())
		}
		_, loc, err := r.snapshot(ctx, state)
		if err != nil {
			return nil, err
		}
		return r.run(ctx, rev.Spec.DeepCopy(), loc)
	})
}

// Resume continues a paused, failed or interrupted rollout.
func (r *Roller) Resume(ctx context.Context) (*Result, error) {
	state, history, err := r.State(ctx)
	if err != nil {
		return nil, err
	}
	if state == nil || state.Phase == PhaseComplete {
		return nil, fmt.Errorf("%s has no rollout to resume; start one with kubectl stage rollout %s", r.w.ref(), r.w.ref())
	}
	rev, ok := history.Find(state.Revision)
	if !ok {
		return nil, fmt.Errorf("revision %d is missing from the history of %s; undo or start a new rollout", state.Revision, r.w.ref())
	}
	return r.exclusively(ctx, func(ctx context.Context) (*Result, error) {
		return r.restart(ctx, state, rev.Spec.DeepCopy())
	})
}

// restart marks the rollout progressing again and runs it.
func (r *Roller) restart(ctx context.Context, state *State, target *corev1.PodTemplateSpec) (*Result, error) {
	err := r.commitRunning(ctx, state.Revision, func(s *State, h History) (*State, History, error) {
		s.Phase, s.FailedSite, s.Message = PhaseProgressing, "", ""
		// The wave in progress starts over (its moves are idempotent) with
		// its full --timeout: the failure or the lost runner took some.
		s.Moving, s.WaveStarted = nil, nil
		state = s
		return s, h, nil
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.Out, "resuming the rollout of %s to revision %d: %d of %d sites done%s\n",
		r.w.ref(), state.Revision, len(state.Done), len(state.Desired), dryrun.Suffix(r.DryRun))
	if r.DryRun != kcmdutil.DryRunNone {
		return &Result{Ref: r.w.ref(), State: state}, nil
	}
	_, loc, err := r.snapshot(ctx, state)
	if err != nil {
		return nil, err
	}
	return r.run(ctx, target, loc)
}

// Pause asks the running rollout to stop after its current wave.
func (r *Roller) Pause(ctx context.Context) (*State, error) {
	var paused *State
	err := r.commit(ctx, func(s *State, h History) (*State, History, error) {
		if s == nil || s.Phase != PhaseProgressing {
			phase := "no rollout"
			if s != nil {
				phase = "its rollout is " + string(s.Phase)
			}
			return nil, nil, fmt.Errorf("%s cannot be paused: %s", r.w.ref(), phase)
		}
		s.Phase = PhasePaused
		paused = s
		return s, h, nil
	})
	return paused, err
}

func (r *Roller) unfinished(s *State) error {
	ref := r.w.ref()
	switch s.Phase {
	case PhaseFailed:
		return fmt.Errorf("the rollout of %s to revision %d failed at site %s (%s); fix it and run kubectl stage rollout resume %s, or return every site with kubectl stage rollout undo %s",
			ref, s.Revision, s.FailedSite, s.Message, ref, ref)
	default:
		return fmt.Errorf("a rollout of %s to revision %d is %s (%d of %d sites done); continue it with kubectl stage rollout resume %s, or return every site with kubectl stage rollout undo %s",
			ref, s.Revision, strings.ToLower(string(s.Phase)), len(s.Done), len(s.Desired), ref, ref)
	}
}

// snapshot lists the app's pods and the nodes' sites; the pods a rollout
// replaced are placed where state says.
func (r *Roller) snapshot(ctx context.Context, state *State) ([]*corev1.Pod, Locator, error) {
	selector, err := metav1.LabelSelectorAsSelector(r.w.selector())
	if err != nil {
		return nil, Locator{}, err
	}
	nodes, err := r.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, Locator{}, err
	}
	loc := Locator{NodeSite: map[string]string{}, Placed: map[string]string{}}
	if state != nil {
		maps.Copy(loc.Placed, state.Placed)
	}
	for _, n := range nodes.Items {
		loc.NodeSite[n.Name] = n.Labels[api.LabelSite]
	}
	list, err := r.client.CoreV1().Pods(r.w.ref().Namespace).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, Locator{}, err
	}
	pods := make([]*corev1.Pod, len(list.Items))
	for i := range list.Items {
		pods[i] = &list.Items[i]
	}
	return pods, loc, nil
}

// Status reports the stored state with every site's live counts.
func (r *Roller) Status(ctx context.Context) (*Result, error) {
	state, _, err := r.State(ctx)
	if err != nil {
		return nil, err
	}
	pods, loc, err := r.snapshot(ctx, state)
	if err != nil {
		return nil, err
	}
	res := &Result{Ref: r.w.ref(), State: state}
	if state != nil {
		res.Sites = r.summarize(state, pods, loc)
	}
	return res, nil
}

// summarize counts every site of the rollout.
func (r *Roller) summarize(state *State, pods []*corev1.Pod, loc Locator) []SiteProgress {
	progress, _ := IndexPods(pods, loc, state.Revision).Count(sortedKeys(state.Desired), state.Desired, state.Gates.MinReady.Duration, r.now())
	return progress
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func describeWaves(waves [][]string) string {
	parts := make([]string, len(waves))
	for i, w := range waves {
		parts[i] = "[" + strings.Join(w, ",") + "]"
	}
	return strings.Join(parts, " → ")
}
