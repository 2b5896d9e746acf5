package rollout

import (
	"fmt"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// Object is the result as the kubectl-stage.io/v1alpha1 Rollout that the
// commands print: the plan, the phase, and each site in wave order with its
// pods and its result.
func (r *Result) Object() *v1alpha1.Rollout {
	obj := &v1alpha1.Rollout{
		ObjectMeta: metav1.ObjectMeta{Name: r.Ref.Name, Namespace: r.Ref.Namespace},
		Spec:       v1alpha1.RolloutSpec{Workload: v1alpha1.WorkloadReference{Kind: r.Ref.Kind, Name: r.Ref.Name}},
	}
	if r.NoChange {
		obj.Status.Phase = v1alpha1.RolloutUnchanged
	}
	s := r.State
	if s == nil {
		return obj
	}
	obj.Spec.Revision, obj.Spec.Waves, obj.Spec.Gates = s.Revision, s.Waves, s.Gates
	if !r.NoChange {
		obj.Status.Phase = string(s.Phase)
	}
	obj.Status.FailedSite, obj.Status.Message, obj.Status.Cause = s.FailedSite, s.Message, s.Cause
	obj.Status.Started, obj.Status.Updated = s.Started, s.Updated

	progress := map[string]SiteProgress{}
	for _, p := range r.Sites {
		progress[p.Site] = p
	}
	for _, wave := range s.Waves {
		for _, site := range wave {
			p, counted := progress[site]
			if !counted {
				p = SiteProgress{Site: site, Desired: s.Desired[site]}
			}
			obj.Status.Sites = append(obj.Status.Sites, v1alpha1.RolloutSiteStatus{
				Name: site, Wave: s.WaveOf(site), Desired: p.Desired, Updated: p.Updated, Ready: p.Ready, Outdated: p.Outdated,
				Result: siteResult(s, site),
			})
		}
	}
	return obj
}

// siteResult says how far the rollout got at site.
func siteResult(s *State, site string) string {
	switch {
	case slices.Contains(s.Left, site):
		return v1alpha1.SiteLeft
	case slices.Contains(s.Done, site):
		return v1alpha1.SiteUpdated
	case site == s.FailedSite:
		return v1alpha1.SiteFailed
	case s.Phase == PhaseFailed || s.Phase == PhasePaused:
		return v1alpha1.SiteNotReached
	default:
		return v1alpha1.SiteWaiting
	}
}

// Objects is the history as kubectl-stage.io/v1alpha1 RolloutRevisions of
// the workload ref, oldest first.
func (h History) Objects(ref Ref) *v1alpha1.RolloutRevisionList {
	list := &v1alpha1.RolloutRevisionList{}
	for _, rev := range h {
		list.Items = append(list.Items, rev.Object(ref))
	}
	return list
}

// Object is the revision as a kubectl-stage.io/v1alpha1 RolloutRevision of
// the workload ref.
func (rev Revision) Object(ref Ref) v1alpha1.RolloutRevision {
	return v1alpha1.RolloutRevision{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", ref.Name, rev.Number), Namespace: ref.Namespace, CreationTimestamp: rev.Time},
		Revision:   rev.Number, Cause: rev.Cause, Images: rev.Images, Result: string(rev.Result), Template: rev.Spec,
	}
}
