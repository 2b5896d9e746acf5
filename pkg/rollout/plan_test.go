package rollout

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/input"
)

func TestPlanWaves(t *testing.T) {
	sites := []string{"d", "b", "a", "c", "e"}
	tests := []struct {
		name      string
		order     []string
		waves     []string
		maxAtOnce int
		want      [][]string
		wantErr   string
		wantFix   input.Name // the input the error points at
	}{
		{name: "canary then one at a time", waves: []string{"canary", "rest"}, maxAtOnce: 1,
			want: [][]string{{"a"}, {"b"}, {"c"}, {"d"}, {"e"}}},
		{name: "canary then all the rest", waves: []string{"canary", "rest"},
			want: [][]string{{"a"}, {"b", "c", "d", "e"}}},
		{name: "rest capped at two", waves: []string{"canary", "rest"}, maxAtOnce: 2,
			want: [][]string{{"a"}, {"b", "c"}, {"d", "e"}}},
		{name: "numbers, leftovers form a last wave", waves: []string{"1", "2"},
			want: [][]string{{"a"}, {"b", "c"}, {"d", "e"}}},
		{name: "order goes first, the others by name", order: []string{"e", "c"}, waves: []string{"canary", "rest"}, maxAtOnce: 1,
			want: [][]string{{"e"}, {"c"}, {"a"}, {"b"}, {"d"}}},
		{name: "a number larger than the sites", waves: []string{"9"},
			want: [][]string{{"a", "b", "c", "d", "e"}}},
		{name: "unknown site in order", order: []string{"x"}, wantErr: `the site order names site "x", where the app has no pods; its sites are: a, b, c, d, e`, wantFix: InputOrder},
		{name: "site twice in order", order: []string{"a", "a"}, wantErr: `names site "a" twice`, wantFix: InputOrder},
		{name: "bad token", waves: []string{"canary", "half"}, wantErr: `"half" is not a wave`, wantFix: InputWaves},
		{name: "zero sites wave", waves: []string{"0"}, wantErr: `"0" is not a wave`, wantFix: InputWaves},
		{name: "negative cap", maxAtOnce: -1, wantErr: "the most sites in one wave must be 0 (no limit) or more, not -1", wantFix: InputMaxAtOnce},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := PlanWaves(sites, tt.order, tt.waves, tt.maxAtOnce)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if fix := input.Suggestions(err); !reflect.DeepEqual(fix, []input.Suggestion{input.Use(tt.wantFix)}) {
					t.Errorf("suggestions %v, want %s", fix, tt.wantFix)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	if _, err := PlanWaves(nil, nil, nil, 0); err == nil {
		t.Error("an app with no sites must not plan")
	}
}

func TestParseAndSetImages(t *testing.T) {
	one := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "node", Image: "v1"}}}}
	two := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		InitContainers: []corev1.Container{{Name: "init", Image: "i1"}},
		Containers:     []corev1.Container{{Name: "node", Image: "v1"}, {Name: "sidecar", Image: "s1"}},
	}}
	tests := []struct {
		name     string
		tmpl     *corev1.PodTemplateSpec
		images   []string
		want     string
		wantInit string // the init container's image, when it is the one set
		wantErr  string
	}{
		{name: "only container", tmpl: one, images: []string{"reg/p2p:v2"}, want: "node=reg/p2p:v2"},
		{name: "named container", tmpl: two, images: []string{"sidecar=s2"}, want: "node=v1,sidecar=s2"},
		{name: "init container", tmpl: two, images: []string{"init=i2"}, want: "node=v1,sidecar=s1", wantInit: "i2"},
		{name: "registry with port", tmpl: one, images: []string{"node=reg:5000/p2p:v2"}, want: "node=reg:5000/p2p:v2"},
		{name: "unnamed with two containers", tmpl: two, images: []string{"v2"}, wantErr: "the pod has 2 containers (init, node, sidecar); name the one to change: CONTAINER=v2"},
		{name: "unknown container", tmpl: one, images: []string{"web=v2"}, wantErr: `no container "web"; its containers are: node`},
		{name: "empty image", tmpl: one, images: []string{"node="}, wantErr: "expected [CONTAINER=]IMAGE"},
		{name: "empty container", tmpl: one, images: []string{"=v2"}, wantErr: "expected [CONTAINER=]IMAGE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			specs, err := ParseImages(tt.images)
			var out *corev1.PodTemplateSpec
			if err == nil {
				out, err = SetImages(tt.tmpl, specs)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || Images(out) != tt.want {
				t.Fatalf("got %v, %v; want %s", out, err, tt.want)
			}
			if tt.wantInit != "" && out.Spec.InitContainers[0].Image != tt.wantInit {
				t.Errorf("init container image %q, want %q", out.Spec.InitContainers[0].Image, tt.wantInit)
			}
		})
	}
	if one.Spec.Containers[0].Image != "v1" {
		t.Error("SetImages changed its input")
	}
}

func TestHistoryRecordAndRevisions(t *testing.T) {
	var h History
	for n := 1; n <= HistoryLimit+2; n++ {
		h = h.Record(Revision{Number: n})
	}
	if len(h) != HistoryLimit || h[0].Number != 3 || h.Latest() != HistoryLimit+2 {
		t.Fatalf("history kept %d entries from %d, latest %d", len(h), h[0].Number, h.Latest())
	}
	h = h.Record(Revision{Number: 5, Cause: "undo"})
	if last := h[len(h)-1]; last.Number != 5 || last.Cause != "undo" || len(h) != HistoryLimit {
		t.Fatalf("undo must move revision 5 to the end: %+v", h)
	}
	tmpl := StampRevision(&corev1.PodTemplateSpec{}, 7)
	if PodRevision(tmpl.ObjectMeta) != 7 || PodRevision(metav1.ObjectMeta{}) != 1 {
		t.Error("revision annotation round trip")
	}
	if PodRevision(metav1.ObjectMeta{Annotations: map[string]string{api.AnnotationRevision: "x"}}) != 1 {
		t.Error("a garbled revision counts as revision 1")
	}
	ann := map[string]string{}
	state := &State{Revision: 2, Phase: PhasePaused, Waves: [][]string{{"a"}, {"b", "c"}}, Done: []string{"a"}}
	if err := writeAnnotations(ann, state, h); err != nil {
		t.Fatal(err)
	}
	back, hist, err := ReadAnnotations(ann)
	if err != nil || back.NextWave() != 1 || back.WaveOf("c") != 2 || len(hist) != len(h) {
		t.Fatalf("state round trip: %+v %v", back, err)
	}
	if _, _, err := ReadAnnotations(map[string]string{api.AnnotationRollout: "{"}); err == nil || !strings.Contains(err.Error(), "remove it to start over") {
		t.Errorf("garbled state: %v", err)
	}
	if _, _, err := ReadAnnotations(map[string]string{api.AnnotationRollout: `{"version":99,"revision":2,"phase":"Progressing"}`}); err == nil || !strings.Contains(err.Error(), "written by a newer kubectl-stage (state version 99") {
		t.Errorf("a state from a newer version must be refused: %v", err)
	}
}

func pod(name, node string, revision int, readyFor time.Duration, now time.Time) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	p.ObjectMeta = StampRevision(&corev1.PodTemplateSpec{ObjectMeta: p.ObjectMeta}, revision).ObjectMeta
	if readyFor >= 0 {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(now.Add(-readyFor))}}
	}
	return p
}

func TestCount(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	loc := Locator{NodeSite: map[string]string{"n-a": "a", "n-b": "b"}, Placed: map[string]string{"sts-2": "b"}}
	deleting := pod("old-a", "n-a", 1, time.Minute, now)
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	pinned := pod("pinned", "", 2, -1, now)
	pinned.Spec.NodeSelector = map[string]string{api.LabelSite: "a"}
	pods := []*corev1.Pod{
		pod("new-a", "n-a", 2, time.Minute, now),
		pod("young-a", "n-a", 2, 2*time.Second, now),
		deleting,
		pinned,
		pod("old-b", "n-b", 1, time.Minute, now),
		pod("sts-2", "", 2, -1, now), // recreated, not yet scheduled
		pod("elsewhere", "n-x", 2, time.Minute, now),
	}
	got, next := IndexPods(pods, loc, 2).Count([]string{"a", "b"}, map[string]int{"a": 3, "b": 2}, 10*time.Second, now)
	want := []SiteProgress{
		{Site: "a", Desired: 3, Updated: 3, Ready: 1},
		{Site: "b", Desired: 2, Updated: 1, Outdated: 1},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Count = %+v, want %+v", got, want)
	}
	if wantNext := now.Add(8 * time.Second); !next.Equal(wantNext) {
		t.Errorf("next wake-up %v, want %v (when young-a has been Ready 10s)", next, wantNext)
	}
	if got[0].Done() || !(SiteProgress{Desired: 1, Ready: 1, Updated: 1}).Done() {
		t.Error("Done")
	}
}

func TestBrokenAndDescribe(t *testing.T) {
	crash := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
		Name:                 "node",
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error"}},
	}}}}
	if got := Broken(crash); !strings.Contains(got, "CrashLoopBackOff (last exit 2 Error)") {
		t.Errorf("Broken = %q", got)
	}
	pending := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available",
	}}}}
	if Broken(pending) != "" {
		t.Error("a pending pod may still become Ready")
	}
	if got := DescribePod(pending); got != "pod p is Pending: PodScheduled=False Unschedulable 0/3 nodes are available" {
		t.Errorf("DescribePod = %q", got)
	}
}

func TestLocatorDaemonSetPin(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n-b"}}},
		}}},
	}}}}
	if got := (Locator{NodeSite: map[string]string{"n-b": "b"}}).SiteOf(p); got != "b" {
		t.Errorf("SiteOf a DaemonSet pod pinned to n-b = %q", got)
	}
}
