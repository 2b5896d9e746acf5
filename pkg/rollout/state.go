package rollout

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// Phase is where a rollout stands.
type Phase string

const (
	PhaseProgressing Phase = "Progressing"
	PhasePaused      Phase = "Paused"
	PhaseFailed      Phase = "Failed"
	PhaseComplete    Phase = "Complete"
)

// Gates decide when a site's wave has succeeded; the API type is the one
// stored, so `resume`, run by anyone, applies the same gates.
type Gates = v1alpha1.RolloutGates

// PeerGate is --gate-peers.
type PeerGate = v1alpha1.PeerGate

// What a failed wave does.
const (
	OnFailurePause = v1alpha1.OnFailurePause
	OnFailureUndo  = v1alpha1.OnFailureUndo
)

// State is the rollout in progress (or the last one), as stored in
// api.AnnotationRollout.
type State struct {
	// Version is the layout of this state (StateVersion); a runner never
	// acts on, nor writes over, a state from a newer kubectl-stage.
	Version  int        `json:"version,omitempty"`
	Revision int        `json:"revision"`
	Phase    Phase      `json:"phase"`
	Waves    [][]string `json:"waves"`
	// Desired is the number of the app's pods at each site when the
	// rollout was planned; a site is done when that many new pods are Ready.
	Desired map[string]int `json:"desired"`
	// Placed remembers the site of each pod the rollout replaced: a
	// StatefulSet recreates it under the same name, and until it is
	// scheduled this is the only link to its site.
	Placed map[string]string `json:"placed,omitempty"`
	// Done lists the sites that passed their wave, in order.
	Done []string `json:"done,omitempty"`
	// Moving lists the sites of the wave in progress whose pods the runner
	// has started to replace, from WaveStarted on (the wave's --timeout
	// counts from then, whichever runner continues it). Both are cleared
	// when the wave passes, and by resume, which restarts the wave.
	Moving      []string     `json:"moving,omitempty"`
	WaveStarted *metav1.Time `json:"waveStarted,omitempty"`
	// Retired lists the wave's sites whose old pods were retired already
	// (Deployments), so that no runner scales the original down twice.
	Retired []string `json:"retired,omitempty"`
	// Left lists the sites passed because every node there left the
	// cluster during the rollout: no pod was left there to update.
	Left []string `json:"left,omitempty"`
	// FailedSite and Message say why the rollout stopped.
	FailedSite string `json:"failedSite,omitempty"`
	Message    string `json:"message,omitempty"`
	// Cause says why a runner began this rollout by itself: an undo by
	// --on-failure undo names the failure it undoes.
	Cause string `json:"cause,omitempty"`
	Gates Gates  `json:"gates"`
	// Strategy is the workload's own update strategy (JSON), restored when
	// the rollout completes (StatefulSets and DaemonSets).
	Strategy json.RawMessage `json:"strategy,omitempty"`
	Started  metav1.Time     `json:"started"`
	Updated  metav1.Time     `json:"updated"`
}

// StateVersion is the layout of State this kubectl-stage reads and writes.
// Fields added later must be ones an older reader may ignore; a change an
// older reader would misread raises it. Version 2 added the peer gate and
// --on-failure undo: a version 1 runner would pass waves the gate holds,
// or pause where it must undo, so a state using them is written as
// version 2 (and one without them as 1, which older runners still drive).
const StateVersion = 2

// layout is the oldest state version that carries s's meaning.
func (s *State) layout() int {
	if s.Gates.Peers.Min > 0 || s.Gates.OnFailure == OnFailureUndo {
		return 2
	}
	return 1
}

// Readable refuses a state written by a newer kubectl-stage, whose meaning
// this one cannot know.
func (s *State) Readable() error {
	if s.Version > StateVersion {
		return fmt.Errorf("the rollout state was written by a newer kubectl-stage (state version %d, this one knows up to %d); upgrade kubectl-stage (kubectl krew upgrade stage) and run the command again", s.Version, StateVersion)
	}
	return nil
}

// NextWave is the index of the first wave with a site not yet done.
func (s *State) NextWave() int {
	for i, wave := range s.Waves {
		for _, site := range wave {
			if !slices.Contains(s.Done, site) {
				return i
			}
		}
	}
	return len(s.Waves)
}

// WaveOf is the 1-based wave number of a site (0 if it has none).
func (s *State) WaveOf(site string) int {
	for i, wave := range s.Waves {
		if slices.Contains(wave, site) {
			return i + 1
		}
	}
	return 0
}

// Revision is one entry of the app's history.
type Revision struct {
	Number int                    `json:"revision"`
	Cause  string                 `json:"cause"`
	Images string                 `json:"images"`
	Time   metav1.Time            `json:"time"`
	Result Phase                  `json:"result,omitempty"`
	Spec   corev1.PodTemplateSpec `json:"template"`
}

// HistoryLimit is how many revisions are kept (annotations are limited to
// 256 KiB in all, and each revision holds a pod template).
const HistoryLimit = 10

// History is the app's revisions, oldest first; the last one is current.
type History []Revision

// Find returns the revision with the given number.
func (h History) Find(number int) (*Revision, bool) {
	for i := range h {
		if h[i].Number == number {
			return &h[i], true
		}
	}
	return nil, false
}

// Latest is the highest revision number (0 for an empty history).
func (h History) Latest() int {
	latest := 0
	for _, r := range h {
		latest = max(latest, r.Number)
	}
	return latest
}

// Record makes r the current revision: an entry with the same number moves
// to the end (as `undo` does), and the oldest entries beyond the limit go.
func (h History) Record(r Revision) History {
	out := slices.DeleteFunc(slices.Clone(h), func(old Revision) bool { return old.Number == r.Number })
	out = append(out, r)
	if len(out) > HistoryLimit {
		out = out[len(out)-HistoryLimit:]
	}
	return out
}

// PodRevision is the revision a pod (or template) runs.
func PodRevision(meta metav1.ObjectMeta) int {
	n, err := strconv.Atoi(meta.Annotations[api.AnnotationRevision])
	if err != nil || n < 1 {
		return 1
	}
	return n
}

// StampRevision returns tmpl annotated as revision n.
func StampRevision(tmpl *corev1.PodTemplateSpec, n int) *corev1.PodTemplateSpec {
	out := tmpl.DeepCopy()
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	out.Annotations[api.AnnotationRevision] = strconv.Itoa(n)
	return out
}

// SameTemplate compares templates as the workload controllers do.
func SameTemplate(a, b *corev1.PodTemplateSpec) bool { return equality.Semantic.DeepEqual(a, b) }

// ReadAnnotations decodes the state and history kept on a workload.
func ReadAnnotations(annotations map[string]string) (*State, History, error) {
	var state *State
	if raw := annotations[api.AnnotationRollout]; raw != "" {
		state = &State{}
		if err := json.Unmarshal([]byte(raw), state); err != nil {
			return nil, nil, fmt.Errorf("annotation %s is not a rollout state (%v); remove it to start over", api.AnnotationRollout, err)
		}
		if err := state.Readable(); err != nil {
			return nil, nil, err
		}
	}
	var history History
	if raw := annotations[api.AnnotationRolloutHistory]; raw != "" {
		if err := json.Unmarshal([]byte(raw), &history); err != nil {
			return nil, nil, fmt.Errorf("annotation %s is not a rollout history (%v); remove it to start over", api.AnnotationRolloutHistory, err)
		}
	}
	return state, history, nil
}

// writeAnnotations stores state and history into annotations.
func writeAnnotations(annotations map[string]string, state *State, history History) error {
	if state != nil {
		state.Version = state.layout()
		raw, err := json.Marshal(state)
		if err != nil {
			return err
		}
		annotations[api.AnnotationRollout] = string(raw)
	}
	if history != nil {
		raw, err := json.Marshal(history)
		if err != nil {
			return err
		}
		annotations[api.AnnotationRolloutHistory] = string(raw)
	}
	return nil
}
