package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
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
	now    func() time.Time
}

// New finds the app's workload.
func New(ctx context.Context, client kubernetes.Interface, ref Ref, out io.Writer) (*Roller, error) {
	w, err := newWorkload(ctx, client, ref)
	if err != nil {
		return nil, err
	}
	return &Roller{client: client, w: w, Out: out, now: time.Now}, nil
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
	return r.begin(ctx, target, state, history, plan)
}

// Undo returns every site to an earlier revision (0: the one before the
// current), site by site like any rollout.
func (r *Roller) Undo(ctx context.Context, toRevision int, plan Plan) (*Result, error) {
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
	undone.Cause = fmt.Sprintf("undo of revision %d", current)
	undone.Time = metav1.NewTime(r.now())
	undone.Result = PhaseProgressing
	history = history.Record(undone)
	return r.begin(ctx, target, state, history, plan)
}

// begin plans the waves from where the pods are now, writes the target and
// the state in one update, and runs the waves.
func (r *Roller) begin(ctx context.Context, target *corev1.PodTemplateSpec, previous *State, history History, plan Plan) (*Result, error) {
	pods, loc, err := r.snapshot(ctx, previous)
	if err != nil {
		return nil, err
	}
	desired := map[string]int{}
	for _, pod := range pods {
		if !Live(pod) {
			continue
		}
		site := loc.SiteOf(pod)
		if site == "" {
			return nil, fmt.Errorf("pod %s has no site yet (not scheduled, or its node has no %s label); wait for it or fix its node, then run the rollout again", pod.Name, api.LabelSite)
		}
		desired[site]++
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
		Desired: desired, Placed: loc.Placed, Gates: plan.Gates, Started: now, Updated: now,
	}
	if previous != nil && previous.Phase != PhaseComplete {
		// An undo over an unfinished rollout: the workload's own strategy
		// is the one that rollout saved, not the OnDelete it set.
		state.Strategy = previous.Strategy
	}
	err = r.commit(ctx, func(stored *State, _ History) (*State, History, error) {
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
		r.w.ref(), state.Revision, Images(target), len(waves), describeWaves(waves), dryrun.Suffix(r.DryRun))
	if r.DryRun != kcmdutil.DryRunNone {
		return &Result{Ref: r.w.ref(), State: state}, nil
	}
	return r.run(ctx, target, loc)
}

// sameRollout reports whether two reads of the state are of the same
// rollout at the same point.
func sameRollout(a, b *State) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Revision == b.Revision && a.Phase == b.Phase && a.Started.Equal(&b.Started) && len(a.Done) == len(b.Done)
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
	err = r.commitRunning(ctx, state.Revision, func(s *State, h History) (*State, History, error) {
		s.Phase, s.FailedSite, s.Message = PhaseProgressing, "", ""
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
	return r.run(ctx, rev.Spec.DeepCopy(), loc)
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
	if state == nil {
		return res, nil
	}
	res.Sites, _ = Count(pods, loc, sortedKeys(state.Desired), state.Desired, state.Revision, state.Gates.MinReady.Duration, r.now())
	return res, nil
}

// Follow prints the rollout's progress as it changes, as the runner and
// the pods report it, until it completes, fails or is paused.
func (r *Roller) Follow(ctx context.Context) (*Result, error) {
	w, err := r.watch(ctx)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	printed := map[string]SiteProgress{}
	lastPhase := Phase("")
	loc := Locator{NodeSite: map[string]string{}, Placed: map[string]string{}}
	for {
		// Everything comes from the watch caches: no request per event.
		res, err := w.status(r, loc)
		if err != nil {
			return nil, err
		}
		s := res.State
		if s == nil {
			return res, fmt.Errorf("%s has not been rolled out with kubectl stage rollout", r.w.ref())
		}
		if s.Phase != lastPhase {
			fmt.Fprintf(r.Out, "revision %d: %s (%d of %d sites done)\n", s.Revision, s.Phase, len(s.Done), len(s.Desired))
			lastPhase = s.Phase
		}
		for _, p := range res.Sites {
			if printed[p.Site] != p {
				fmt.Fprintf(r.Out, "  %s\n", p)
				printed[p.Site] = p
			}
		}
		switch s.Phase {
		case PhaseComplete, PhasePaused:
			return res, nil
		case PhaseFailed:
			return res, fmt.Errorf("the rollout of %s to revision %d failed at site %s: %s", r.w.ref(), s.Revision, s.FailedSite, s.Message)
		}
		select {
		case <-w.changed:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
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

// watcher keeps the app's pods and the nodes in informer caches and wakes
// the rollout whenever one changes.
type watcher struct {
	pods  listersv1.PodLister
	nodes listersv1.NodeLister
	// self caches the workload, whose annotations hold the state.
	self    cache.Store
	changed chan struct{}
	stop    context.CancelFunc
}

func (r *Roller) watch(ctx context.Context) (*watcher, error) {
	selector, err := metav1.LabelSelectorAsSelector(r.w.selector())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{changed: make(chan struct{}, 1), stop: cancel}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	podFactory := informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithNamespace(r.w.ref().Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }))
	podInformer := podFactory.Core().V1().Pods()
	if _, err := podInformer.Informer().AddEventHandler(notify); err != nil {
		cancel()
		return nil, err
	}
	nodeFactory := informers.NewSharedInformerFactory(r.client, 0)
	nodeInformer := nodeFactory.Core().V1().Nodes()
	if _, err := nodeInformer.Informer().AddEventHandler(notify); err != nil {
		cancel()
		return nil, err
	}
	// The workload itself, for its state: pause, resume, undo and progress
	// written by whoever runs the rollout.
	selfFactory := informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithNamespace(r.w.ref().Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", r.w.ref().Name).String()
		}))
	self := r.w.informer(selfFactory)
	if _, err := self.AddEventHandler(notify); err != nil {
		cancel()
		return nil, err
	}
	w.pods, w.nodes, w.self = podInformer.Lister(), nodeInformer.Lister(), self.GetStore()
	podFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	selfFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced, self.HasSynced) {
		cancel()
		return nil, fmt.Errorf("watching the pods of %s: %w", r.w.ref(), context.Cause(ctx))
	}
	return w, nil
}

// status is Roller.Status read from the caches.
func (w *watcher) status(r *Roller, loc Locator) (*Result, error) {
	key := r.w.ref().Namespace + "/" + r.w.ref().Name
	obj, exists, err := w.self.GetByKey(key)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("%s was deleted", r.w.ref())
	}
	meta, err := apimeta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	state, _, err := ReadAnnotations(meta.GetAnnotations())
	if err != nil || state == nil {
		return &Result{Ref: r.w.ref(), State: state}, err
	}
	maps.Copy(loc.Placed, state.Placed)
	pods, loc, err := w.podsAndSites(loc)
	if err != nil {
		return nil, err
	}
	res := &Result{Ref: r.w.ref(), State: state}
	res.Sites, _ = Count(pods, loc, sortedKeys(state.Desired), state.Desired, state.Revision, state.Gates.MinReady.Duration, r.now())
	return res, nil
}

func (w *watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) podsAndSites(loc Locator) ([]*corev1.Pod, Locator, error) {
	pods, err := w.pods.List(labels.Everything())
	if err != nil {
		return nil, loc, err
	}
	nodes, err := w.nodes.List(labels.Everything())
	if err != nil {
		return nil, loc, err
	}
	for _, n := range nodes {
		loc.NodeSite[n.Name] = n.Labels[api.LabelSite]
	}
	return pods, loc, nil
}

// run goes through the waves not yet done; the result carries every
// site's counts however it ends.
func (r *Roller) run(ctx context.Context, target *corev1.PodTemplateSpec, loc Locator) (*Result, error) {
	res, err := r.runWaves(ctx, target, loc)
	if res != nil && res.State != nil && res.Sites == nil {
		if pods, loc, snapErr := r.snapshot(context.WithoutCancel(ctx), res.State); snapErr == nil {
			s := res.State
			res.Sites, _ = Count(pods, loc, sortedKeys(s.Desired), s.Desired, s.Revision, s.Gates.MinReady.Duration, r.now())
		}
	}
	return res, err
}

func (r *Roller) runWaves(ctx context.Context, target *corev1.PodTemplateSpec, loc Locator) (*Result, error) {
	w, err := r.watch(ctx)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	res := &Result{Ref: r.w.ref()}
	for {
		state, _, err := r.State(ctx)
		if err != nil {
			return nil, err
		}
		res.State = state
		if err := r.stillOurs(state, PodRevision(target.ObjectMeta)); err != nil {
			return res, err
		}
		index := state.NextWave()
		if index == len(state.Waves) {
			return r.complete(ctx, target, res)
		}
		wave := slices.DeleteFunc(slices.Clone(state.Waves[index]), func(s string) bool { return slices.Contains(state.Done, s) })
		fmt.Fprintf(r.Out, "wave %d/%d: %s\n", index+1, len(state.Waves), strings.Join(wave, ", "))
		timing, err := r.runWave(ctx, state, target, wave, w, loc)
		if err != nil {
			if ctx.Err() != nil {
				return res, fmt.Errorf("interrupted during wave %d; the rollout stays where it is: kubectl stage rollout resume %s continues it: %w", index+1, r.w.ref(), ctx.Err())
			}
			return res, r.fail(ctx, res, err)
		}
		res.Timings = append(res.Timings, timing)
		err = r.commitRunning(ctx, state.Revision, func(s *State, h History) (*State, History, error) {
			for _, site := range wave {
				if !slices.Contains(s.Done, site) {
					s.Done = append(s.Done, site)
				}
			}
			return s, h, nil
		})
		if err != nil {
			return res, err
		}
	}
}

// stillOurs stops a runner whose rollout was paused, or replaced by an undo
// or a newer rollout, between waves.
func (r *Roller) stillOurs(state *State, revision int) error {
	switch {
	case state == nil || state.Revision != revision:
		return r.replaced(revision)
	case state.Phase == PhasePaused:
		fmt.Fprintf(r.Out, "paused with %d of %d sites on revision %d; continue with kubectl stage rollout resume %s\n",
			len(state.Done), len(state.Desired), revision, r.w.ref())
		return ErrPaused
	case state.Phase != PhaseProgressing:
		return fmt.Errorf("the rollout of %s is %s", r.w.ref(), state.Phase)
	}
	return nil
}

// siteFailure says which site failed a wave and why.
type siteFailure struct {
	site   string
	reason string
}

func (e *siteFailure) Error() string { return fmt.Sprintf("site %s failed: %s", e.site, e.reason) }

// runWave moves the wave's sites, waits until each has only Ready pods of
// the target revision, and runs the health checks.
func (r *Roller) runWave(ctx context.Context, state *State, target *corev1.PodTemplateSpec, wave []string, w *watcher, loc Locator) (WaveTiming, error) {
	start := r.now()
	timing := WaveTiming{Sites: wave}
	pods, loc, err := w.podsAndSites(loc)
	if err != nil {
		return timing, err
	}
	for _, site := range wave {
		if err := r.w.moveSite(ctx, site, target, state, pods, loc); err != nil {
			return timing, &siteFailure{site: site, reason: err.Error()}
		}
	}
	err = r.commitRunning(ctx, state.Revision, func(s *State, h History) (*State, History, error) {
		if s.Placed == nil {
			s.Placed = map[string]string{}
		}
		maps.Copy(s.Placed, loc.Placed)
		return s, h, nil
	})
	if err != nil {
		return timing, err
	}
	var deadline <-chan time.Time
	if t := state.Gates.Timeout.Duration; t > 0 {
		timer := time.NewTimer(t)
		defer timer.Stop()
		deadline = timer.C
	}
	retired := map[string]bool{}
	printed := map[string]SiteProgress{}
	for {
		pods, loc, err = w.podsAndSites(loc)
		if err != nil {
			return timing, err
		}
		progress, next := Count(pods, loc, wave, state.Desired, state.Revision, state.Gates.MinReady.Duration, r.now())
		done := true
		for _, p := range progress {
			if printed[p.Site] != p {
				fmt.Fprintf(r.Out, "  %s\n", p)
				printed[p.Site] = p
			}
			if broken := brokenAt(pods, loc, p.Site, state.Revision); broken != "" {
				return timing, &siteFailure{site: p.Site, reason: broken}
			}
			if p.Ready >= p.Desired && p.Outdated > 0 && !retired[p.Site] {
				if err := r.w.retireOld(ctx, p.Site, pods, loc); err != nil {
					return timing, &siteFailure{site: p.Site, reason: err.Error()}
				}
				retired[p.Site] = true
			}
			done = done && p.Done()
		}
		if done {
			break
		}
		// Pod events wake the loop; so does the moment a Ready pod has been
		// Ready for --min-ready, which no event announces.
		wake := time.NewTimer(time.Hour)
		if !next.IsZero() {
			wake.Reset(next.Sub(r.now()))
		}
		select {
		case <-w.changed:
		case <-wake.C:
		case <-deadline:
			wake.Stop()
			return timing, r.timedOut(ctx, state, progress, pods, loc)
		case <-ctx.Done():
			wake.Stop()
			return timing, ctx.Err()
		}
		wake.Stop()
	}
	timing.PodsReady = r.now().Sub(start)
	for _, site := range wave {
		if err := r.healthCheck(ctx, state, site, pods, loc); err != nil {
			return timing, &siteFailure{site: site, reason: err.Error()}
		}
		fmt.Fprintf(r.Out, "  %s: done\n", site)
	}
	timing.Total = r.now().Sub(start)
	return timing, nil
}

func brokenAt(pods []*corev1.Pod, loc Locator, site string, revision int) string {
	for _, pod := range pods {
		if Live(pod) && loc.SiteOf(pod) == site && PodRevision(pod.ObjectMeta) == revision {
			if b := Broken(pod); b != "" {
				return b
			}
		}
	}
	return ""
}

func (r *Roller) healthCheck(ctx context.Context, state *State, site string, pods []*corev1.Pod, loc Locator) error {
	if state.Gates.HealthExec == "" && state.Gates.HealthHTTP == "" {
		return nil
	}
	env := CheckEnv{App: r.w.ref().Name, Namespace: r.w.ref().Namespace, Site: site, Revision: state.Revision}
	for _, pod := range pods {
		if Live(pod) && loc.SiteOf(pod) == site && PodRevision(pod.ObjectMeta) == state.Revision {
			env.HostIPs = append(env.HostIPs, pod.Status.HostIP)
			env.PodIPs = append(env.PodIPs, pod.Status.PodIP)
		}
	}
	slices.Sort(env.HostIPs)
	slices.Sort(env.PodIPs)
	return RunHealthCheck(ctx, state.Gates, env)
}

// timedOut explains a wave that ran out of time: each unfinished site's
// pods, with their status and the warning events about them.
func (r *Roller) timedOut(ctx context.Context, state *State, progress []SiteProgress, pods []*corev1.Pod, loc Locator) error {
	for _, p := range progress {
		if p.Done() {
			continue
		}
		var why []string
		for _, pod := range pods {
			if !Live(pod) || loc.SiteOf(pod) != p.Site || PodRevision(pod.ObjectMeta) != state.Revision {
				continue
			}
			if _, ready := readySince(pod); ready {
				continue
			}
			why = append(why, DescribePod(pod)+r.warnings(ctx, pod))
		}
		if len(why) == 0 {
			why = append(why, "no pod of the new revision appeared")
		}
		return &siteFailure{site: p.Site, reason: fmt.Sprintf("%d/%d new pods Ready after %s: %s",
			p.Ready, p.Desired, state.Gates.Timeout.Duration, strings.Join(why, "; "))}
	}
	return &siteFailure{reason: "timed out"}
}

// warnings lists the latest warning events of a pod, as kubectl describe does.
func (r *Roller) warnings(ctx context.Context, pod *corev1.Pod) string {
	events, err := r.client.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID), "type": corev1.EventTypeWarning}.String(),
	})
	if err != nil || len(events.Items) == 0 {
		return ""
	}
	slices.SortFunc(events.Items, func(a, b corev1.Event) int { return a.LastTimestamp.Compare(b.LastTimestamp.Time) })
	last := events.Items[len(events.Items)-1]
	return fmt.Sprintf(" (event %s: %s)", last.Reason, strings.TrimSpace(last.Message))
}

// fail records the failure in the cluster and returns it.
func (r *Roller) fail(ctx context.Context, res *Result, cause error) error {
	var failure *siteFailure
	if !errors.As(cause, &failure) {
		failure = &siteFailure{reason: cause.Error()}
	}
	// The failure is recorded even when ctx is done, so that others see it.
	err := r.commitRunning(context.WithoutCancel(ctx), res.State.Revision, func(s *State, h History) (*State, History, error) {
		s.Phase, s.FailedSite, s.Message = PhaseFailed, failure.site, failure.reason
		res.State = s
		return s, markLatest(h, s.Revision, PhaseFailed), nil
	})
	if err != nil {
		return fmt.Errorf("%v (and recording the failure failed: %v)", cause, err)
	}
	return fmt.Errorf("rollout of %s to revision %d stopped: %w; sites not reached keep their previous revision. After fixing it: kubectl stage rollout resume %s, or return every site: kubectl stage rollout undo %s",
		r.w.ref(), res.State.Revision, cause, r.w.ref(), r.w.ref())
}

func markLatest(h History, revision int, result Phase) History {
	if rev, ok := h.Find(revision); ok {
		rev.Result = result
	}
	return h
}

// complete hands the workload back to its controller and records success.
func (r *Roller) complete(ctx context.Context, target *corev1.PodTemplateSpec, res *Result) (*Result, error) {
	err := r.commitRunning(ctx, res.State.Revision, func(s *State, h History) (*State, History, error) {
		if err := r.w.restore(target, s); err != nil {
			return nil, nil, err
		}
		s.Phase = PhaseComplete
		res.State = s
		return s, markLatest(h, s.Revision, PhaseComplete), nil
	})
	return res, err
}
