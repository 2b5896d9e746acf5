package rollout

import (
	"reflect"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

func TestResultObject(t *testing.T) {
	ref := Ref{Kind: "StatefulSet", Name: "node", Namespace: "p2p"}
	state := func(phase Phase, done []string, failed string) *State {
		return &State{Revision: 3, Phase: phase, Waves: [][]string{{"a"}, {"b", "c"}}, Desired: map[string]int{"a": 1, "b": 2, "c": 1}, Done: done, FailedSite: failed}
	}
	sites := func(results ...string) []v1alpha1.RolloutSiteStatus {
		out := []v1alpha1.RolloutSiteStatus{{Name: "a", Wave: 1, Desired: 1}, {Name: "b", Wave: 2, Desired: 2}, {Name: "c", Wave: 2, Desired: 1}}
		for i := range out {
			out[i].Result = results[i]
		}
		return out
	}
	tests := []struct {
		name      string
		res       Result
		wantPhase string
		wantSites []v1alpha1.RolloutSiteStatus
	}{
		{"never rolled out", Result{Ref: ref}, "", nil},
		{"unchanged", Result{Ref: ref, NoChange: true, State: state(PhaseComplete, []string{"a", "b", "c"}, "")}, v1alpha1.RolloutUnchanged,
			sites(v1alpha1.SiteUpdated, v1alpha1.SiteUpdated, v1alpha1.SiteUpdated)},
		{"progressing", Result{Ref: ref, State: state(PhaseProgressing, []string{"a"}, "")}, v1alpha1.RolloutProgressing,
			sites(v1alpha1.SiteUpdated, v1alpha1.SiteWaiting, v1alpha1.SiteWaiting)},
		{"failed at b", Result{Ref: ref, State: state(PhaseFailed, []string{"a"}, "b")}, v1alpha1.RolloutFailed,
			sites(v1alpha1.SiteUpdated, v1alpha1.SiteFailed, v1alpha1.SiteNotReached)},
		{"paused after a", Result{Ref: ref, State: state(PhasePaused, []string{"a"}, "")}, v1alpha1.RolloutPaused,
			sites(v1alpha1.SiteUpdated, v1alpha1.SiteNotReached, v1alpha1.SiteNotReached)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := tt.res.Object()
			if obj.Name != "node" || obj.Namespace != "p2p" || obj.Spec.Workload != (v1alpha1.WorkloadReference{Kind: "StatefulSet", Name: "node"}) {
				t.Errorf("object meta %v, workload %v", obj.ObjectMeta, obj.Spec.Workload)
			}
			if obj.Status.Phase != tt.wantPhase || !reflect.DeepEqual(obj.Status.Sites, tt.wantSites) {
				t.Errorf("phase %q sites %+v, want %q %+v", obj.Status.Phase, obj.Status.Sites, tt.wantPhase, tt.wantSites)
			}
		})
	}

	// Counted progress replaces the plan's desired counts.
	res := Result{Ref: ref, State: state(PhaseProgressing, nil, ""), Sites: []SiteProgress{{Site: "b", Desired: 2, Updated: 1, Ready: 1, Outdated: 1}}}
	if got := res.Object().Status.Sites[1]; got != (v1alpha1.RolloutSiteStatus{Name: "b", Wave: 2, Desired: 2, Updated: 1, Ready: 1, Outdated: 1, Result: v1alpha1.SiteWaiting}) {
		t.Errorf("site b = %+v", got)
	}
}
