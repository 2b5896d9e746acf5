package rollout

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// run drives the rollout to target until it completes, fails, is paused or
// is replaced; the result carries every site's counts however it ends.
func (r *Roller) run(ctx context.Context, target *corev1.PodTemplateSpec, loc Locator) (*Result, error) {
	res, err := r.drive(ctx, target, loc)
	if res != nil && res.State != nil && res.Sites == nil {
		// Counted even when ctx is done, so that the summary shows where
		// an interrupted rollout stands.
		pods, loc, snapErr := r.snapshot(context.WithoutCancel(ctx), res.State)
		if snapErr != nil {
			return res, errors.Join(err, fmt.Errorf("counting the pods for the summary: %w", snapErr))
		}
		res.Sites = r.summarize(res.State, pods, loc)
	}
	return res, err
}

// executor applies Decide's steps for one runner of one revision. What it
// keeps in memory is only for its output; everything a step decides on is
// in the stored state or the cluster.
type executor struct {
	r        *Roller
	watch    *watcher
	target   *corev1.PodTemplateSpec
	revision int
	res      *Result
	// printed is the last progress line of each site; held the last
	// reason a gate gave for holding the wave.
	printed map[string]SiteProgress
	held    string
	// views are the peer views read for --gate-peers, by pod name.
	views map[string]PeerView
	// wave and waveStart time the wave this runner is in.
	wave      int
	waveStart time.Time
	podsReady time.Duration
}

// drive is the executor's loop: read the state and the caches, decide,
// apply, until a step ends the run.
func (r *Roller) drive(ctx context.Context, target *corev1.PodTemplateSpec, loc Locator) (*Result, error) {
	w, err := r.watch(ctx)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	ex := &executor{r: r, watch: w, target: target, revision: PodRevision(target.ObjectMeta),
		res: &Result{Ref: r.w.ref()}, printed: map[string]SiteProgress{}, views: map[string]PeerView{}, wave: -1}
	for {
		// The state is read from the API server, not the cache: it decides
		// the step, and a stale one would repeat the step just committed.
		state, _, err := r.State(ctx)
		if err != nil {
			return ex.res, err
		}
		ex.res.State = state
		if state != nil {
			maps.Copy(loc.Placed, state.Placed)
		}
		pods, seen, err := w.podsAndSites(loc)
		if err != nil {
			return ex.res, err
		}
		snap := Snapshot{State: state, Revision: ex.revision, Pods: IndexPods(pods, seen, ex.revision), Loc: seen, Now: r.now(), AddsPods: r.w.addsPods(), Views: ex.views}
		step := Decide(snap)
		ex.progress(step)
		finished, err := ex.apply(ctx, step, snap)
		if err != nil && ctx.Err() != nil {
			return ex.res, fmt.Errorf("interrupted during wave %d; the rollout stays where it is: kubectl stage rollout resume %s continues it: %w", step.Wave+1, r.w.ref(), context.Cause(ctx))
		}
		if finished || err != nil {
			return ex.res, err
		}
	}
}

// progress prints the wave's sites whose counts changed, and starts the
// timing of a wave this runner has not seen yet.
func (ex *executor) progress(step Step) {
	if step.Wave != ex.wave {
		ex.wave, ex.waveStart, ex.podsReady = step.Wave, ex.r.now(), 0
	}
	for _, p := range step.Progress {
		if ex.printed[p.Site] != p {
			fmt.Fprintf(ex.r.Out, "  %s\n", p)
			ex.printed[p.Site] = p
		}
	}
	if step.Action == ActionWait && step.Reason != "" && step.Reason != ex.held {
		fmt.Fprintf(ex.r.Out, "  held by --gate-peers: %s\n", step.Reason)
		ex.held = step.Reason
	}
}

// apply carries out one step; finished is true when the run is over.
func (ex *executor) apply(ctx context.Context, step Step, snap Snapshot) (finished bool, err error) {
	r, state := ex.r, snap.State
	switch step.Action {
	case ActionStop:
		return true, ex.stopped(step, state)
	case ActionComplete:
		return true, r.complete(ctx, ex.target, ex.res)
	case ActionFail:
		return true, r.fail(ctx, ex.res, &siteFailure{site: step.Sites[0], reason: ex.explain(ctx, step)})
	case ActionUndo:
		return true, ex.undo(ctx, &siteFailure{site: step.Sites[0], reason: ex.explain(ctx, step)})
	case ActionReadPeers:
		return false, ex.readPeers(ctx, step, snap)
	case ActionAddSites:
		fmt.Fprintf(r.Out, "sites %s joined during the rollout: they form wave %d\n", strings.Join(step.Sites, ", "), step.Wave+1)
		return false, ex.commit(ctx, func(s *State) {
			if len(s.Waves) == step.Wave {
				s.Waves = append(s.Waves, step.Sites)
			}
			for site, n := range step.Added {
				s.Desired[site] = n
			}
		})
	case ActionDropSite:
		fmt.Fprintf(r.Out, "  %s: %s\n", step.Sites[0], step.Reason)
		return false, ex.commit(ctx, func(s *State) {
			s.Done = appendNew(s.Done, step.Sites...)
			s.Left = appendNew(s.Left, step.Sites...)
		})
	case ActionMove:
		return false, ex.move(ctx, step, snap)
	case ActionRetire:
		site := step.Sites[0]
		if err := r.w.retireOld(ctx, snap.Pods.At(site)); err != nil {
			return true, ex.failSite(ctx, site, err)
		}
		return false, ex.commit(ctx, func(s *State) { s.Retired = appendNew(s.Retired, site) })
	case ActionWait:
		return false, ex.wait(ctx, step.Until)
	case ActionPass:
		return ex.pass(ctx, step, snap)
	}
	return true, fmt.Errorf("the rollout state machine chose %q, which this runner cannot do", step.Action)
}

// stopped is how a run ends without a step of its own.
func (ex *executor) stopped(step Step, state *State) error {
	switch step.Stop {
	case StopPaused:
		fmt.Fprintf(ex.r.Out, "paused with %d of %d sites on revision %d; continue with kubectl stage rollout resume %s\n",
			len(state.Done), len(state.Desired), ex.revision, ex.r.w.ref())
		return ErrPaused
	case StopReplaced:
		return ex.r.replaced(ex.revision)
	case StopNewer:
		return errors.New(step.Reason)
	default:
		return fmt.Errorf("the rollout of %s is %s", ex.r.w.ref(), state.Phase)
	}
}

// commit stores a change of this runner's rollout.
func (ex *executor) commit(ctx context.Context, change func(*State)) error {
	return ex.r.commitRunning(ctx, ex.revision, func(s *State, h History) (*State, History, error) {
		change(s)
		ex.res.State = s
		return s, h, nil
	})
}

// move starts replacing the pods of the wave's sites, then records which
// sites are moving, where the replaced pods were, and when the wave began.
func (ex *executor) move(ctx context.Context, step Step, snap Snapshot) error {
	r := ex.r
	fmt.Fprintf(r.Out, "wave %d/%d: %s\n", step.Wave+1, len(snap.State.Waves), strings.Join(step.Sites, ", "))
	for _, site := range step.Sites {
		if err := r.w.moveSite(ctx, site, ex.target, snap.State, snap.Pods.At(site), snap.Loc); err != nil {
			return ex.failSite(ctx, site, err)
		}
	}
	now := metav1.NewTime(r.now())
	return ex.commit(ctx, func(s *State) {
		if s.Placed == nil {
			s.Placed = map[string]string{}
		}
		maps.Copy(s.Placed, snap.Loc.Placed)
		s.Moving = appendNew(s.Moving, step.Sites...)
		if s.WaveStarted == nil {
			s.WaveStarted = &now
		}
	})
}

// wait returns when a pod, a node or the state changes, at until (a Ready
// pod crossing --min-ready, or the wave's deadline: no event announces
// either), or when ctx ends.
func (ex *executor) wait(ctx context.Context, until time.Time) error {
	var wake <-chan time.Time
	if !until.IsZero() {
		timer := time.NewTimer(until.Sub(ex.r.now()))
		defer timer.Stop()
		wake = timer.C
	}
	select {
	case <-ex.watch.changed:
	case <-wake:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// pass runs the gates of a wave whose pods are Ready and records its sites
// done.
func (ex *executor) pass(ctx context.Context, step Step, snap Snapshot) (bool, error) {
	r := ex.r
	ex.podsReady = r.now().Sub(ex.waveStart)
	for _, site := range step.Sites {
		if err := r.healthCheck(ctx, snap.State, site, snap.Pods.At(site)); err != nil {
			return true, ex.failSite(ctx, site, err)
		}
		fmt.Fprintf(r.Out, "  %s: done\n", site)
	}
	err := ex.commit(ctx, func(s *State) {
		s.Done = appendNew(s.Done, step.Sites...)
		s.Moving, s.WaveStarted = nil, nil
		s.Retired = slices.DeleteFunc(s.Retired, func(site string) bool { return slices.Contains(step.Sites, site) })
	})
	if err != nil {
		return true, err
	}
	ex.res.Timings = append(ex.res.Timings, WaveTiming{Sites: step.Sites, PodsReady: ex.podsReady, Total: r.now().Sub(ex.waveStart)})
	return false, nil
}

// failSite records that site failed because of err, unless err comes from
// the runner being interrupted: then the rollout stays as it is, for
// resume (or another runner) to continue.
func (ex *executor) failSite(ctx context.Context, site string, err error) error {
	if ctx.Err() != nil {
		return err
	}
	failure := &siteFailure{site: site, reason: err.Error()}
	if ex.res.State != nil && ex.res.State.Gates.OnFailure == OnFailureUndo {
		return ex.undo(ctx, failure)
	}
	return ex.r.fail(ctx, ex.res, failure)
}

// undo returns every site to the previous revision under the lease this
// runner holds (--on-failure undo), as `kubectl stage rollout undo` would,
// site by site in the failed rollout's order; the write that starts it
// records the failure (one write: a crash cannot leave the rollout failed
// without its undo, or undone without its cause). The undo has no peer
// gate (the previous revision was not held to it) and pauses if it fails
// itself.
func (ex *executor) undo(ctx context.Context, failure *siteFailure) error {
	r, failed := ex.r, ex.res.State
	if ctx.Err() != nil {
		// Interrupted: the rollout stays as it is, for resume (or another
		// runner) to decide again.
		return context.Cause(ctx)
	}
	fmt.Fprintf(r.Out, "%v; --on-failure undo: returning every site to the previous revision\n", failure)
	gates := failed.Gates
	gates.Peers, gates.OnFailure = PeerGate{}, ""
	plan := Plan{Order: slices.Concat(failed.Waves...), MaxAtOnce: 1, Gates: gates}
	cause := fmt.Sprintf("undo of revision %d by --on-failure undo: %v", failed.Revision, failure)
	res, err := r.undo(ctx, 0, plan, cause, func(ctx context.Context, work func(context.Context) (*Result, error)) (*Result, error) {
		// This runner holds the rollout's lease already.
		return work(ctx)
	})
	if res != nil {
		*ex.res = *res
	}
	if err != nil {
		return fmt.Errorf("rollout of %s to revision %d stopped: %w; the automatic undo (--on-failure undo) did not finish: %w", r.w.ref(), failed.Revision, failure, err)
	}
	return fmt.Errorf("rollout of %s to revision %d failed: %w; --on-failure undo returned every site to revision %d", r.w.ref(), failed.Revision, failure, ex.res.State.Revision)
}

// appendNew appends the items list lacks.
func appendNew(list []string, items ...string) []string {
	for _, item := range items {
		if !slices.Contains(list, item) {
			list = append(list, item)
		}
	}
	return list
}

// siteFailure says which site failed a wave and why.
type siteFailure struct {
	site   string
	reason string
}

func (e *siteFailure) Error() string { return fmt.Sprintf("site %s failed: %s", e.site, e.reason) }

func (r *Roller) healthCheck(ctx context.Context, state *State, site string, at *SitePods) error {
	if state.Gates.HealthExec == "" && state.Gates.HealthHTTP == "" {
		return nil
	}
	env := CheckEnv{App: r.w.ref().Name, Namespace: r.w.ref().Namespace, Site: site, Revision: state.Revision}
	for _, pod := range at.Current {
		env.HostIPs = append(env.HostIPs, pod.Status.HostIP)
		env.PodIPs = append(env.PodIPs, pod.Status.PodIP)
	}
	slices.Sort(env.HostIPs)
	slices.Sort(env.PodIPs)
	return RunHealthCheck(ctx, state.Gates, env)
}

// explain is a failure's reason with, for the pods that did not become
// Ready, their status and latest warning event, as kubectl describe shows.
func (ex *executor) explain(ctx context.Context, step Step) string {
	if len(step.Unready) == 0 {
		return step.Reason
	}
	why := make([]string, len(step.Unready))
	for i, pod := range step.Unready {
		why[i] = DescribePod(pod) + ex.r.warnings(ctx, pod)
	}
	return step.Reason + ": " + strings.Join(why, "; ")
}

// warnings lists the latest warning event of a pod, as kubectl describe
// does; the failure is reported without it if events cannot be read.
func (r *Roller) warnings(ctx context.Context, pod *corev1.Pod) string {
	events, err := r.client.CoreV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fields.Set{"involvedObject.name": pod.Name, "involvedObject.uid": string(pod.UID), "type": corev1.EventTypeWarning}.String(),
	})
	if err != nil {
		return fmt.Sprintf(" (its events could not be read: %v)", err)
	}
	if len(events.Items) == 0 {
		return ""
	}
	slices.SortFunc(events.Items, func(a, b corev1.Event) int { return a.LastTimestamp.Compare(b.LastTimestamp.Time) })
	last := events.Items[len(events.Items)-1]
	return fmt.Sprintf(" (event %s: %s)", last.Reason, strings.TrimSpace(last.Message))
}

// fail records the failure in the cluster and returns it.
func (r *Roller) fail(ctx context.Context, res *Result, failure *siteFailure) error {
	// The failure is recorded even when ctx is done, so that others see it.
	err := r.commitRunning(context.WithoutCancel(ctx), res.State.Revision, func(s *State, h History) (*State, History, error) {
		s.Phase, s.FailedSite, s.Message = PhaseFailed, failure.site, failure.reason
		res.State = s
		return s, markLatest(h, s.Revision, PhaseFailed), nil
	})
	if err != nil {
		return fmt.Errorf("%v (and recording the failure failed: %v)", failure, err)
	}
	return fmt.Errorf("rollout of %s to revision %d stopped: %w; sites not reached keep their previous revision. After fixing it: kubectl stage rollout resume %s, or return every site: kubectl stage rollout undo %s",
		r.w.ref(), res.State.Revision, failure, r.w.ref(), r.w.ref())
}

// complete hands the workload back to its controller and records success.
func (r *Roller) complete(ctx context.Context, target *corev1.PodTemplateSpec, res *Result) error {
	return r.commitRunning(ctx, res.State.Revision, func(s *State, h History) (*State, History, error) {
		if err := r.w.restore(target, s); err != nil {
			return nil, nil, err
		}
		s.Phase = PhaseComplete
		res.State = s
		return s, markLatest(h, s.Revision, PhaseComplete), nil
	})
}
