package rollout

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Action is the kind of step a rollout's runner takes next.
type Action string

const (
	// ActionMove starts replacing the pods of the wave's sites.
	ActionMove Action = "Move"
	// ActionRetire removes a site's old pods now that its new ones are
	// Ready (for workloads whose move adds pods beside the old ones).
	ActionRetire Action = "Retire"
	// ActionWait: nothing to do until a pod changes or Until comes.
	ActionWait Action = "Wait"
	// ActionPass: the wave's new pods are all Ready; run its gates and
	// record its sites done.
	ActionPass Action = "Pass"
	// ActionFail stops the rollout at Sites[0] for Reason.
	ActionFail Action = "Fail"
	// ActionComplete hands the workload back to its controller.
	ActionComplete Action = "Complete"
	// ActionAddSites adds a last wave for the sites in Added: the app has
	// pods there that the plan, made before those sites joined, lacks.
	ActionAddSites Action = "AddSites"
	// ActionDropSite passes Sites[0] without pods: every node there left
	// the cluster, so no pod is left there to update.
	ActionDropSite Action = "DropSite"
	// ActionStop: this runner has nothing more to do (see StopReason).
	ActionStop Action = "Stop"
	// ActionReadPeers: the wave's new pods are Ready and --gate-peers
	// holds it; read the views of the pods in Read and decide again.
	ActionReadPeers Action = "ReadPeers"
	// ActionUndo: Sites[0] failed for Reason under --on-failure undo;
	// record the failure and return every site to the previous revision.
	ActionUndo Action = "Undo"
)

// peerRecheck is how often an unmet peer gate reads a view again: no
// event announces that a peer found others.
const peerRecheck = 2 * time.Second

// StopReason says why a runner stops.
type StopReason string

const (
	StopPaused   StopReason = "Paused"
	StopReplaced StopReason = "Replaced" // an undo or a newer rollout took over
	StopEnded    StopReason = "Ended"    // already Complete or Failed
	StopNewer    StopReason = "Newer"    // written by a newer kubectl-stage
)

// Step is what Decide chooses.
type Step struct {
	Action Action
	// Wave is the index of the wave acted on.
	Wave  int
	Sites []string
	// Added are the new sites with their pod counts (ActionAddSites).
	Added map[string]int
	// Until is when to look again if nothing changes before (ActionWait;
	// zero: only on a change).
	Until  time.Time
	Reason string
	// Unready are the new pods that were not Ready when the wave timed out,
	// for the executor to explain with their events.
	Unready []*corev1.Pod
	Stop    StopReason
	// Read are the pods whose peer views to read (ActionReadPeers).
	Read []*corev1.Pod
	// Progress counts the wave's sites as Decide saw them.
	Progress []SiteProgress
}

// Snapshot is everything Decide looks at: the stored state and the app's
// pods and nodes as one runner sees them at one moment.
type Snapshot struct {
	State *State
	// Revision is the revision the runner was started for.
	Revision int
	// Pods are the app's live pods, indexed against Revision.
	Pods PodsBySite
	Loc  Locator
	Now  time.Time
	// AddsPods is true for workloads whose move adds the new pods beside
	// the old ones (Deployments), which are retired once the new are Ready.
	AddsPods bool
	// Views are the peer views the runner has read, by pod name
	// (--gate-peers); a pod without one has not been read yet.
	Views map[string]PeerView
}

// PeerView summarizes what one pod's peers endpoint listed when read.
type PeerView struct {
	// UID is the pod's: a pod recreated under the same name is read again.
	UID types.UID
	// Known live peers of the app it lists, CrossSite of them at other
	// sites; Err says why the view could not be read.
	Known, CrossSite int
	Err              string
	Read             time.Time
}

// unmet says why v fails the gate, "" when it passes.
func unmet(g PeerGate, v PeerView) string {
	switch {
	case v.Err != "":
		return "its peer view could not be read: " + v.Err
	case v.Known < g.Min || v.CrossSite < g.CrossSite:
		return fmt.Sprintf("its view lists %d peers, %d at other sites (--gate-peers wants %s)", v.Known, v.CrossSite, FormatPeerGate(g))
	}
	return ""
}

// Decide is the rollout's state machine: from the stored state and what
// the cluster looks like, the one next step. It has no side effects; the
// executor applies the step, stores what it changes, and asks again.
func Decide(s Snapshot) Step {
	st := s.State
	if st == nil {
		return Step{Action: ActionStop, Stop: StopReplaced}
	}
	if err := st.Readable(); err != nil {
		return Step{Action: ActionStop, Stop: StopNewer, Reason: err.Error()}
	}
	if st.Revision != s.Revision {
		return Step{Action: ActionStop, Stop: StopReplaced}
	}
	switch st.Phase {
	case PhaseProgressing, PhasePaused:
	case PhaseComplete, PhaseFailed:
		return Step{Action: ActionStop, Stop: StopEnded}
	default:
		return Step{Action: ActionStop, Stop: StopNewer, Reason: fmt.Sprintf("the rollout state has phase %q, which this kubectl-stage does not know; upgrade kubectl-stage", st.Phase)}
	}
	pods := s.Pods
	if added := unplannedSites(st, pods); len(added) > 0 && st.Phase == PhaseProgressing {
		return Step{Action: ActionAddSites, Wave: len(st.Waves), Added: added, Sites: sortedKeys(added)}
	}
	wave := st.NextWave()
	if wave == len(st.Waves) {
		return Step{Action: ActionComplete, Wave: wave}
	}
	pending := slices.DeleteFunc(slices.Clone(st.Waves[wave]), func(site string) bool { return slices.Contains(st.Done, site) })
	for _, site := range pending {
		if !s.Loc.HasNodesAt(site) {
			return Step{Action: ActionDropSite, Wave: wave, Sites: []string{site},
				Reason: fmt.Sprintf("no node is left at site %s (they left the cluster); nothing there to update", site)}
		}
	}
	// A pause stops a runner between waves: the wave it has started
	// finishes first, so that no site is left half replaced.
	if st.WaveStarted == nil || !isSubset(pending, st.Moving) {
		if st.Phase == PhasePaused {
			return Step{Action: ActionStop, Stop: StopPaused}
		}
		return Step{Action: ActionMove, Wave: wave, Sites: pending}
	}
	progress, next := pods.Count(pending, st.Desired, st.Gates.MinReady.Duration, s.Now)
	for _, site := range pending {
		for _, pod := range pods.At(site).Current {
			if why := Broken(pod); why != "" {
				return onFailure(st, Step{Action: ActionFail, Wave: wave, Sites: []string{site}, Reason: why, Progress: progress})
			}
		}
	}
	var deadline time.Time
	if t := st.Gates.Timeout.Duration; t > 0 {
		deadline = st.WaveStarted.Add(t)
	}
	done := true
	for _, p := range progress {
		if !p.Done() && !deadline.IsZero() && !s.Now.Before(deadline) {
			return onFailure(st, timedOut(wave, p, pods.At(p.Site), st.Gates.Timeout.Duration, progress))
		}
		if s.AddsPods && p.Ready >= p.Desired && p.Outdated > 0 && !slices.Contains(st.Retired, p.Site) {
			return Step{Action: ActionRetire, Wave: wave, Sites: []string{p.Site}, Progress: progress}
		}
		done = done && p.Done()
	}
	if done && st.Gates.Peers.Min > 0 {
		return onFailure(st, peerGate(s, wave, pending, deadline, progress))
	}
	if done {
		return Step{Action: ActionPass, Wave: wave, Sites: pending, Progress: progress}
	}
	return Step{Action: ActionWait, Wave: wave, Sites: pending, Until: earliest(next, deadline), Progress: progress}
}

// peerGate holds a wave whose new pods are all Ready until each one's view
// lists enough peers: views not read yet (or read too long ago to still
// fail) are read first; a wave whose deadline passes while held fails.
func peerGate(s Snapshot, wave int, pending []string, deadline time.Time, progress []SiteProgress) Step {
	gate := s.State.Gates.Peers
	var read []*corev1.Pod
	var short []string
	failedSite := ""
	var recheck time.Time
	for _, site := range pending {
		for _, pod := range s.Pods.At(site).Current {
			view, ok := s.Views[pod.Name]
			if !ok || view.UID != pod.UID {
				read = append(read, pod)
				short = append(short, pod.Name+": its peer view has not been read")
				failedSite = cmp.Or(failedSite, site)
				continue
			}
			why := unmet(gate, view)
			if why == "" {
				continue
			}
			short = append(short, pod.Name+": "+why)
			failedSite = cmp.Or(failedSite, site)
			if again := view.Read.Add(peerRecheck); s.Now.Before(again) {
				recheck = earliest(recheck, again)
			} else {
				read = append(read, pod)
			}
		}
	}
	if len(short) == 0 {
		return Step{Action: ActionPass, Wave: wave, Sites: pending, Progress: progress}
	}
	reason := strings.Join(short, "; ")
	if !deadline.IsZero() && !s.Now.Before(deadline) {
		return Step{Action: ActionFail, Wave: wave, Sites: []string{failedSite}, Progress: progress,
			Reason: fmt.Sprintf("the peer gate was not met after %s: %s", s.State.Gates.Timeout.Duration, reason)}
	}
	if len(read) > 0 {
		return Step{Action: ActionReadPeers, Wave: wave, Sites: pending, Read: read, Reason: reason, Progress: progress}
	}
	return Step{Action: ActionWait, Wave: wave, Sites: pending, Until: earliest(recheck, deadline), Reason: reason, Progress: progress}
}

// onFailure turns a failure into an undo under --on-failure undo.
func onFailure(st *State, step Step) Step {
	if step.Action == ActionFail && st.Gates.OnFailure == OnFailureUndo {
		step.Action = ActionUndo
	}
	return step
}

// timedOut fails the site that was not done when its wave's time ran out.
func timedOut(wave int, p SiteProgress, at *SitePods, timeout time.Duration, progress []SiteProgress) Step {
	step := Step{Action: ActionFail, Wave: wave, Sites: []string{p.Site}, Progress: progress,
		Reason: fmt.Sprintf("%d/%d new pods Ready after %s", p.Ready, p.Desired, timeout)}
	for _, pod := range at.Current {
		if _, ready := readySince(pod); !ready {
			step.Unready = append(step.Unready, pod)
		}
	}
	if len(step.Unready) == 0 {
		step.Reason += ": no pod of the new revision appeared"
	}
	return step
}

// unplannedSites are the sites where the app has live pods but that the
// plan lacks (they joined after it was made), with their pod counts.
func unplannedSites(st *State, pods PodsBySite) map[string]int {
	var added map[string]int
	for site, at := range pods {
		if _, planned := st.Desired[site]; planned || site == "" {
			continue
		}
		if added == nil {
			added = map[string]int{}
		}
		added[site] = at.Len()
	}
	return added
}

func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}

// earliest is the earlier of two moments, a zero one meaning "never".
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
