package rollout

import (
	"bytes"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

func TestPrintHistory(t *testing.T) {
	now := time.Date(2026, 11, 25, 7, 0, 0, 0, time.UTC)
	history := rollout.History{
		{Number: 1, Result: rollout.PhaseComplete, Time: metav1.NewTime(now.Add(-48 * time.Hour)), Images: "node=p2p:v1", Cause: "found before the first rollout"},
		{Number: 2, Result: rollout.PhaseFailed, Time: metav1.NewTime(now.Add(-90 * time.Second)), Images: "node=p2p:v2", Cause: "kubectl stage rollout --image node=p2p:v2"},
	}
	var out bytes.Buffer
	if err := printHistory(&out, history, now); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"REVISION   RESULT     AGE   IMAGES        CAUSE\n" +
		"1          Complete   2d    node=p2p:v1   found before the first rollout\n" +
		"2          Failed     90s   node=p2p:v2   kubectl stage rollout --image node=p2p:v2\n"
	if out.String() != want {
		t.Errorf("printHistory:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPrintSummary(t *testing.T) {
	failed := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: "node", Namespace: "p2p"},
		Spec:       v1alpha1.RolloutSpec{Workload: v1alpha1.WorkloadReference{Kind: "StatefulSet", Name: "node"}, Revision: 3},
		Status: v1alpha1.RolloutStatus{Phase: v1alpha1.RolloutFailed, FailedSite: "osaka", Message: "pod node-1: ImagePullBackOff", Sites: []v1alpha1.RolloutSiteStatus{
			{Name: "frankfurt", Wave: 1, Desired: 1, Updated: 1, Ready: 1, Result: v1alpha1.SiteUpdated},
			{Name: "osaka", Wave: 2, Desired: 2, Updated: 1, Result: v1alpha1.SiteFailed},
			{Name: "tokyo", Wave: 3, Desired: 1, Result: v1alpha1.SiteNotReached},
		}},
	}
	unchanged := *failed
	unchanged.Status = v1alpha1.RolloutStatus{Phase: v1alpha1.RolloutUnchanged}
	for _, tc := range []struct {
		name   string
		r      *v1alpha1.Rollout
		suffix string
		want   string
	}{
		{name: "failed", r: failed, want: "" +
			"statefulset/node revision 3: Failed at site osaka: pod node-1: ImagePullBackOff\n" +
			"SITE        WAVE   DESIRED   UPDATED   READY   RESULT\n" +
			"frankfurt   1      1         1         1       Updated\n" +
			"osaka       2      2         1         0       Failed\n" +
			"tokyo       3      1         0         0       NotReached\n"},
		{name: "unchanged, dry run", r: &unchanged, suffix: " (dry run)", want: "statefulset/node already runs that template; nothing to roll out (dry run)\n"},
		{name: "not started", r: &v1alpha1.Rollout{}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printSummary(&out, tc.r, tc.suffix); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.want {
				t.Errorf("printSummary:\n%s\nwant:\n%s", out.String(), tc.want)
			}
		})
	}
}
