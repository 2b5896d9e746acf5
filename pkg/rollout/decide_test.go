package rollout

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// decided is a Step without the counts, with pods by name, for comparing.
type decided struct {
	Action  Action
	Wave    int
	Sites   []string
	Added   map[string]int
	Until   time.Time
	Stop    StopReason
	Unready []string
	Read    []string
}

func summarizeStep(s Step) decided {
	d := decided{Action: s.Action, Wave: s.Wave, Sites: s.Sites, Added: s.Added, Until: s.Until, Stop: s.Stop}
	for _, p := range s.Unready {
		d.Unready = append(d.Unready, p.Name)
	}
	for _, p := range s.Read {
		d.Read = append(d.Read, p.Name)
	}
	return d
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	started := func(ago time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(-ago)); return &t }
	// Three sites, one node each, one pod per site; the rollout goes to
	// revision 2 one site per wave with --min-ready 10s --timeout 1m.
	nodes := map[string]string{"n-a": "a", "n-b": "b", "n-c": "c"}
	base := func(change func(*State)) *State {
		s := &State{
			Version: StateVersion, Revision: 2, Phase: PhaseProgressing,
			Waves:   [][]string{{"a"}, {"b"}, {"c"}},
			Desired: map[string]int{"a": 1, "b": 1, "c": 1},
			Gates:   Gates{MinReady: metav1.Duration{Duration: 10 * time.Second}, Timeout: metav1.Duration{Duration: time.Minute}},
		}
		if change != nil {
			change(s)
		}
		return s
	}
	// ready is a pod Ready for a minute; young one Ready for 4s; pending
	// one not Ready.
	ready := func(name, node string, rev int) *corev1.Pod { return pod(name, node, rev, time.Minute, now) }
	young := func(name, node string, rev int) *corev1.Pod { return pod(name, node, rev, 4*time.Second, now) }
	pending := func(name, node string, rev int) *corev1.Pod { return pod(name, node, rev, -1, now) }
	allOld := []*corev1.Pod{ready("p-a", "n-a", 1), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)}
	// gated is wave a moved 20s ago under --gate-peers 2,cross-site=1;
	// gatedPods have its new pod Ready long enough.
	gated := func(change func(*State)) *State {
		return base(func(s *State) {
			s.Moving, s.WaveStarted, s.Gates.Peers = []string{"a"}, started(20*time.Second), PeerGate{Min: 2, CrossSite: 1}
			if change != nil {
				change(s)
			}
		})
	}
	gatedPods := []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)}
	crashing := pending("p-b", "n-b", 2)
	crashing.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "node", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}

	tests := []struct {
		name     string
		state    *State
		revision int // the runner's; 0: the state's
		pods     []*corev1.Pod
		nodes    map[string]string
		placed   map[string]string
		addsPods bool
		views    map[string]PeerView
		want     decided
		reason   string // in the step's reason
	}{
		{name: "no state: the rollout was removed",
			state: nil, revision: 2, pods: allOld,
			want: decided{Action: ActionStop, Stop: StopReplaced}},
		{name: "state written by a newer version is not acted on",
			state: base(func(s *State) { s.Version = StateVersion + 1 }), pods: allOld,
			want: decided{Action: ActionStop, Stop: StopNewer}, reason: "written by a newer kubectl-stage"},
		{name: "a phase this version does not know is not acted on",
			state: base(func(s *State) { s.Phase = "Canarying" }), pods: allOld,
			want: decided{Action: ActionStop, Stop: StopNewer}, reason: `phase "Canarying"`},
		{name: "undo or a newer rollout replaced this runner's revision",
			state: base(func(s *State) { s.Revision = 3 }), revision: 2, pods: allOld,
			want: decided{Action: ActionStop, Stop: StopReplaced}},
		{name: "complete rollout: nothing to do",
			state: base(func(s *State) { s.Phase, s.Done = PhaseComplete, []string{"a", "b", "c"} }), pods: allOld,
			want: decided{Action: ActionStop, Stop: StopEnded}},
		{name: "failed rollout: nothing to do until resume",
			state: base(func(s *State) { s.Phase, s.FailedSite = PhaseFailed, "b" }), pods: allOld,
			want: decided{Action: ActionStop, Stop: StopEnded}},
		{name: "start: the first wave moves",
			state: base(nil), pods: allOld,
			want: decided{Action: ActionMove, Wave: 0, Sites: []string{"a"}}},
		{name: "moved, new pod not yet Ready: wait until the deadline",
			state: base(func(s *State) { s.Moving, s.WaveStarted = []string{"a"}, started(5*time.Second) }),
			pods:  []*corev1.Pod{pending("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(55 * time.Second)}},
		{name: "new pod Ready for less than --min-ready: wait until it has been",
			state: base(func(s *State) { s.Moving, s.WaveStarted = []string{"a"}, started(5*time.Second) }),
			pods:  []*corev1.Pod{young("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(6 * time.Second)}},
		{name: "new pod Ready long enough: the wave passes its gate",
			state: base(func(s *State) { s.Moving, s.WaveStarted = []string{"a"}, started(20*time.Second) }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionPass, Wave: 0, Sites: []string{"a"}}},
		{name: "next wave after the first passed",
			state: base(func(s *State) { s.Done = []string{"a"} }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionMove, Wave: 1, Sites: []string{"b"}}},
		{name: "a new pod that cannot start fails the site at once",
			state: base(func(s *State) { s.Done, s.Moving, s.WaveStarted = []string{"a"}, []string{"b"}, started(time.Second) }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), crashing, ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionFail, Wave: 1, Sites: []string{"b"}}, reason: "ImagePullBackOff"},
		{name: "timeout: the site fails naming its unready pods (an unscheduled one by where it was replaced)",
			state:  base(func(s *State) { s.Done, s.Moving, s.WaveStarted = []string{"a"}, []string{"b"}, started(time.Minute) }),
			pods:   []*corev1.Pod{ready("p-a", "n-a", 2), pending("p-b", "", 2), ready("p-c", "n-c", 1)},
			placed: map[string]string{"p-b": "b"}, want: decided{Action: ActionFail, Wave: 1, Sites: []string{"b"}, Unready: []string{"p-b"}},
			reason: "0/1 new pods Ready after 1m0s"},
		{name: "timeout with no new pod at all",
			state: base(func(s *State) { s.Done, s.Moving, s.WaveStarted = []string{"a"}, []string{"b"}, started(2*time.Minute) }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionFail, Wave: 1, Sites: []string{"b"}}, reason: "no pod of the new revision appeared"},
		{name: "no --timeout: wait for the next change only",
			state: base(func(s *State) {
				s.Gates.Timeout.Duration, s.Done, s.Moving, s.WaveStarted = 0, []string{"a"}, []string{"b"}, started(time.Hour)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 2), pending("p-b", "n-b", 2), ready("p-c", "n-c", 1)},
			want: decided{Action: ActionWait, Wave: 1, Sites: []string{"b"}}},
		{name: "Deployment: new pods Ready, old ones still there: retire them",
			state:    base(func(s *State) { s.Moving, s.WaveStarted = []string{"a"}, started(20*time.Second) }),
			pods:     []*corev1.Pod{ready("p-a2", "n-a", 2), ready("p-a", "n-a", 1), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			addsPods: true, want: decided{Action: ActionRetire, Wave: 0, Sites: []string{"a"}}},
		{name: "Deployment: old pods retired, not yet gone: wait, never retire twice",
			state: base(func(s *State) {
				s.Moving, s.WaveStarted, s.Retired = []string{"a"}, started(20*time.Second), []string{"a"}
			}),
			pods:     []*corev1.Pod{ready("p-a2", "n-a", 2), ready("p-a", "n-a", 1), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			addsPods: true, want: decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(40 * time.Second)}},
		{name: "StatefulSet: an old pod still at the site is not retired but waited for",
			state: base(func(s *State) { s.Moving, s.WaveStarted = []string{"a"}, started(20*time.Second) }),
			pods:  []*corev1.Pod{ready("p-a2", "n-a", 2), ready("p-a", "n-a", 1), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(40 * time.Second)}},
		{name: "pause during a wave: the wave finishes",
			state: base(func(s *State) { s.Phase, s.Moving, s.WaveStarted = PhasePaused, []string{"a"}, started(20*time.Second) }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionPass, Wave: 0, Sites: []string{"a"}}},
		{name: "pause between waves: stop",
			state: base(func(s *State) { s.Phase, s.Done = PhasePaused, []string{"a"} }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionStop, Stop: StopPaused}},
		{name: "resume after Ctrl-C mid-wave: the moved wave is not moved again",
			state: base(func(s *State) {
				s.Done, s.Moving, s.WaveStarted = []string{"a"}, []string{"b"}, started(30*time.Second)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 2), ready("p-c", "n-c", 1)},
			want: decided{Action: ActionPass, Wave: 1, Sites: []string{"b"}}},
		{name: "Ctrl-C between the moves and their record: moved again (deleting only what is outdated)",
			state: base(func(s *State) { s.Done = []string{"a"} }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), pending("p-b", "n-b", 2), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionMove, Wave: 1, Sites: []string{"b"}}},
		{name: "undo: a site that never left the target revision passes once moved",
			state: base(func(s *State) {
				s.Revision, s.Done, s.Moving, s.WaveStarted = 1, []string{"a"}, []string{"b"}, started(time.Second)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 1), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want: decided{Action: ActionPass, Wave: 1, Sites: []string{"b"}}},
		{name: "undo: a site on the abandoned revision moves back",
			state: base(func(s *State) { s.Revision = 1 }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionMove, Wave: 0, Sites: []string{"a"}}},
		{name: "every node of the next site left: the site is dropped",
			state: base(func(s *State) { s.Done = []string{"a"} }),
			nodes: map[string]string{"n-a": "a", "n-c": "c"},
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionDropSite, Wave: 1, Sites: []string{"b"}}, reason: "no node is left at site b"},
		{name: "one node of a site left: its pod is not counted, the site waits for its replacement",
			state: base(func(s *State) { s.Moving, s.WaveStarted = []string{"a"}, started(5*time.Second) }),
			nodes: map[string]string{"n-a2": "a", "n-b": "b", "n-c": "c"},
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(55 * time.Second)}},
		{name: "a site added during the rollout becomes the last wave",
			state: base(func(s *State) { s.Done = []string{"a"} }),
			nodes: map[string]string{"n-a": "a", "n-b": "b", "n-c": "c", "n-d": "d"},
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1), ready("p-d", "n-d", 2), ready("p-d2", "n-d", 1)},
			want:  decided{Action: ActionAddSites, Wave: 3, Sites: []string{"d"}, Added: map[string]int{"d": 2}}},
		{name: "a site added while paused waits for resume",
			state: base(func(s *State) { s.Phase, s.Done = PhasePaused, []string{"a"} }),
			nodes: map[string]string{"n-a": "a", "n-b": "b", "n-c": "c", "n-d": "d"},
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1), ready("p-d", "n-d", 2)},
			want:  decided{Action: ActionStop, Stop: StopPaused}},
		{name: "two sites in a wave: the wave waits for the slower",
			state: base(func(s *State) {
				s.Waves, s.Moving, s.WaveStarted = [][]string{{"a", "b"}, {"c"}}, []string{"a", "b"}, started(20*time.Second)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 2), young("p-b", "n-b", 2), ready("p-c", "n-c", 1)},
			want: decided{Action: ActionWait, Wave: 0, Sites: []string{"a", "b"}, Until: now.Add(6 * time.Second)}},
		{name: "--on-failure undo: a new pod that cannot start undoes the rollout",
			state: base(func(s *State) {
				s.Gates.OnFailure, s.Done, s.Moving, s.WaveStarted = OnFailureUndo, []string{"a"}, []string{"b"}, started(time.Second)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 2), crashing, ready("p-c", "n-c", 1)},
			want: decided{Action: ActionUndo, Wave: 1, Sites: []string{"b"}}, reason: "ImagePullBackOff"},
		{name: "--on-failure undo: a wave that times out undoes the rollout",
			state: base(func(s *State) {
				s.Gates.OnFailure, s.Done, s.Moving, s.WaveStarted = OnFailureUndo, []string{"a"}, []string{"b"}, started(time.Minute)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 2), pending("p-b", "n-b", 2), ready("p-c", "n-c", 1)},
			want: decided{Action: ActionUndo, Wave: 1, Sites: []string{"b"}, Unready: []string{"p-b"}}, reason: "0/1 new pods Ready after 1m0s"},
		{name: "--on-failure pause (the default) on the same failure: fail and stop",
			state: base(func(s *State) {
				s.Gates.OnFailure, s.Done, s.Moving, s.WaveStarted = OnFailurePause, []string{"a"}, []string{"b"}, started(time.Second)
			}),
			pods: []*corev1.Pod{ready("p-a", "n-a", 2), crashing, ready("p-c", "n-c", 1)},
			want: decided{Action: ActionFail, Wave: 1, Sites: []string{"b"}}, reason: "ImagePullBackOff"},
		{name: "peer gate: new pod Ready, its view not read yet: read it",
			state: gated(nil), pods: gatedPods,
			want: decided{Action: ActionReadPeers, Wave: 0, Sites: []string{"a"}, Read: []string{"p-a"}}},
		{name: "peer gate: too few peers: wait and read again in 2s",
			state: gated(nil), pods: gatedPods,
			views:  map[string]PeerView{"p-a": {Known: 0, Read: now.Add(-time.Second)}},
			want:   decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(time.Second)},
			reason: "p-a: its view lists 0 peers, 0 at other sites (--gate-peers wants 2,cross-site=1)"},
		{name: "peer gate: enough peers but too few at other sites: wait",
			state: gated(nil), pods: gatedPods,
			views:  map[string]PeerView{"p-a": {Known: 3, CrossSite: 0, Read: now}},
			want:   decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(2 * time.Second)},
			reason: "p-a: its view lists 3 peers, 0 at other sites"},
		{name: "peer gate: a short view read 2s ago is read again",
			state: gated(nil), pods: gatedPods,
			views: map[string]PeerView{"p-a": {Known: 1, CrossSite: 1, Read: now.Add(-2 * time.Second)}},
			want:  decided{Action: ActionReadPeers, Wave: 0, Sites: []string{"a"}, Read: []string{"p-a"}}},
		{name: "peer gate: enough peers, enough at other sites: the wave passes",
			state: gated(nil), pods: gatedPods,
			views: map[string]PeerView{"p-a": {Known: 2, CrossSite: 1, Read: now.Add(-time.Minute)}},
			want:  decided{Action: ActionPass, Wave: 0, Sites: []string{"a"}}},
		{name: "peer gate: a view that cannot be read holds the wave, saying why",
			state: gated(nil), pods: gatedPods,
			views:  map[string]PeerView{"p-a": {Err: "GET 7946/peers through the API server: connection refused", Read: now}},
			want:   decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(2 * time.Second)},
			reason: "p-a: its peer view could not be read: GET 7946/peers through the API server: connection refused"},
		{name: "peer gate: a view of an earlier pod of the same name is not the new pod's",
			state: gated(nil), pods: gatedPods,
			views: map[string]PeerView{"p-a": {UID: "earlier", Known: 2, CrossSite: 1, Read: now}},
			want:  decided{Action: ActionReadPeers, Wave: 0, Sites: []string{"a"}, Read: []string{"p-a"}}},
		{name: "peer gate: not applied before the pods are Ready",
			state: gated(nil),
			pods:  []*corev1.Pod{young("p-a", "n-a", 2), ready("p-b", "n-b", 1), ready("p-c", "n-c", 1)},
			want:  decided{Action: ActionWait, Wave: 0, Sites: []string{"a"}, Until: now.Add(6 * time.Second)}},
		{name: "peer gate: the wave's time runs out while held: the site fails",
			state: gated(func(s *State) { s.WaveStarted = started(time.Minute) }), pods: gatedPods,
			views:  map[string]PeerView{"p-a": {Known: 1, Read: now}},
			want:   decided{Action: ActionFail, Wave: 0, Sites: []string{"a"}},
			reason: "the peer gate was not met after 1m0s: p-a: its view lists 1 peers, 0 at other sites"},
		{name: "peer gate: the wave's time runs out while held, --on-failure undo: undo",
			state: gated(func(s *State) { s.WaveStarted, s.Gates.OnFailure = started(time.Minute), OnFailureUndo }), pods: gatedPods,
			views: map[string]PeerView{"p-a": {Known: 1, Read: now}},
			want:  decided{Action: ActionUndo, Wave: 0, Sites: []string{"a"}}, reason: "the peer gate was not met"},
		{name: "every wave passed: complete",
			state: base(func(s *State) { s.Done = []string{"a", "b", "c"} }),
			pods:  []*corev1.Pod{ready("p-a", "n-a", 2), ready("p-b", "n-b", 2), ready("p-c", "n-c", 2)},
			want:  decided{Action: ActionComplete, Wave: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			revision := tt.revision
			if revision == 0 && tt.state != nil {
				revision = tt.state.Revision
			}
			if tt.nodes == nil {
				tt.nodes = nodes
			}
			loc := Locator{NodeSite: tt.nodes, Placed: tt.placed}
			step := Decide(Snapshot{State: tt.state, Revision: revision, Pods: IndexPods(tt.pods, loc, revision), Loc: loc, Now: now, AddsPods: tt.addsPods, Views: tt.views})
			if got := summarizeStep(step); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide = %+v\nwant       %+v", got, tt.want)
			}
			if !strings.Contains(step.Reason, tt.reason) {
				t.Errorf("reason %q lacks %q", step.Reason, tt.reason)
			}
		})
	}
}

// Decide only reads: the same snapshot gives the same step, and the state
// it was given is unchanged.
func TestDecideIsPure(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	state := &State{Version: StateVersion, Revision: 2, Phase: PhaseProgressing, Waves: [][]string{{"a"}}, Desired: map[string]int{"a": 1}}
	before := jsonCopy(t, state)
	loc := Locator{NodeSite: map[string]string{"n-a": "a", "n-d": "d"}, Placed: map[string]string{}}
	pods := IndexPods([]*corev1.Pod{pod("p-a", "n-a", 1, time.Minute, now), pod("p-d", "n-d", 1, time.Minute, now)}, loc, 2)
	first := Decide(Snapshot{State: state, Revision: 2, Pods: pods, Loc: loc, Now: now})
	second := Decide(Snapshot{State: state, Revision: 2, Pods: pods, Loc: loc, Now: now})
	if !reflect.DeepEqual(first, second) || first.Action != ActionAddSites {
		t.Errorf("Decide gave %+v, then %+v", first, second)
	}
	if !reflect.DeepEqual(state, before) {
		t.Errorf("Decide changed the state: %+v, was %+v", state, before)
	}
}

func jsonCopy(t *testing.T, s *State) *State {
	t.Helper()
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	out := &State{}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
	return out
}
