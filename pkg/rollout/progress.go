package rollout

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// SiteProgress counts one site's pods of the app.
type SiteProgress struct {
	Site string `json:"site"`
	// Desired is the number of pods the site had when the rollout began.
	Desired int `json:"desired"`
	// Updated pods run the target revision; Ready ones have been Ready for
	// the minimum time; Outdated pods still run another revision.
	Updated  int `json:"updated"`
	Ready    int `json:"ready"`
	Outdated int `json:"outdated"`
}

// Done reports whether the site runs only the target revision, all Ready.
func (p SiteProgress) Done() bool {
	return p.Outdated == 0 && p.Ready >= p.Desired
}

func (p SiteProgress) String() string {
	return fmt.Sprintf("%s: %d/%d updated, %d/%d ready", p.Site, p.Updated, p.Desired, p.Ready, p.Desired)
}

// Locator tells the site of a pod: from its node, or, while it is not yet
// scheduled, from the site it is pinned to.
type Locator struct {
	NodeSite map[string]string
	// Placed remembers pods the rollout deleted, by name, with their site:
	// a StatefulSet recreates a pod under the same name, and until it is
	// scheduled this is the only link to its site.
	Placed map[string]string
}

// SiteOf returns the pod's site, or "" if it cannot be known.
func (l Locator) SiteOf(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return l.NodeSite[pod.Spec.NodeName]
	}
	if s := pod.Spec.NodeSelector[api.LabelSite]; s != "" {
		return s
	}
	if aff := pod.Spec.Affinity; aff != nil && aff.NodeAffinity != nil && aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		for _, term := range aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			for _, req := range term.MatchExpressions {
				if req.Operator == corev1.NodeSelectorOpIn && len(req.Values) == 1 {
					switch req.Key {
					case api.LabelSite:
						return req.Values[0]
					case corev1.LabelHostname:
						return l.NodeSite[req.Values[0]]
					}
				}
			}
			for _, f := range term.MatchFields {
				// DaemonSet pods are pinned to their node by metadata.name.
				if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
					return l.NodeSite[f.Values[0]]
				}
			}
		}
	}
	return l.Placed[pod.Name]
}

// HasNodesAt reports whether any node is at the site.
func (l Locator) HasNodesAt(site string) bool {
	for _, s := range l.NodeSite {
		if s == site {
			return true
		}
	}
	return false
}

// Live reports whether a pod counts: not being deleted and not finished.
func Live(pod *corev1.Pod) bool {
	return pod.DeletionTimestamp == nil && pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

// readySince returns when the pod became Ready, if it is.
func readySince(pod *corev1.Pod) (time.Time, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.LastTransitionTime.Time, c.Status == corev1.ConditionTrue
		}
	}
	return time.Time{}, false
}

// SitePods are a site's live pods of the app, split by revision.
type SitePods struct {
	// Current pods run the target revision; Outdated ones another.
	Current, Outdated []*corev1.Pod
}

// Live returns every live pod at the site, current ones first.
func (p *SitePods) Live() []*corev1.Pod {
	return append(slices.Clone(p.Current), p.Outdated...)
}

// Len is the number of live pods at the site.
func (p *SitePods) Len() int { return len(p.Current) + len(p.Outdated) }

// PodsBySite is the app's live pods indexed by site against a revision:
// the one place that decides which pods are at which site on which
// revision. Pods whose site is unknown are under "".
type PodsBySite map[string]*SitePods

// IndexPods sorts the app's live pods by site and revision.
func IndexPods(pods []*corev1.Pod, loc Locator, revision int) PodsBySite {
	index := PodsBySite{}
	for _, pod := range pods {
		if !Live(pod) {
			continue
		}
		site := loc.SiteOf(pod)
		at := index[site]
		if at == nil {
			at = &SitePods{}
			index[site] = at
		}
		if PodRevision(pod.ObjectMeta) == revision {
			at.Current = append(at.Current, pod)
		} else {
			at.Outdated = append(at.Outdated, pod)
		}
	}
	return index
}

// At returns the site's pods (none if it has none).
func (x PodsBySite) At(site string) *SitePods {
	if p := x[site]; p != nil {
		return p
	}
	return &SitePods{}
}

// Count tallies the given sites' pods. A pod counts as ready once it has
// been Ready for minReady; next is the earliest moment a Ready pod will
// cross that line (zero if none), so the caller can wake up then instead of
// polling.
func (x PodsBySite) Count(sites []string, desired map[string]int, minReady time.Duration, now time.Time) (progress []SiteProgress, next time.Time) {
	for _, site := range sites {
		at := x.At(site)
		p := SiteProgress{Site: site, Desired: desired[site], Updated: len(at.Current), Outdated: len(at.Outdated)}
		for _, pod := range at.Current {
			since, ready := readySince(pod)
			if !ready {
				continue
			}
			if at := since.Add(minReady); at.After(now) {
				if next.IsZero() || at.Before(next) {
					next = at
				}
				continue
			}
			p.Ready++
		}
		progress = append(progress, p)
	}
	return progress, next
}

// podFailureReasons are container states that will not heal by waiting.
var podFailureReasons = []string{
	"CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName",
	"CreateContainerConfigError", "CreateContainerError", "RunContainerError",
}

// Broken returns why a pod of the new revision cannot become Ready on its
// own ("" if it may still), so that a wave fails at once instead of at its
// timeout.
func Broken(pod *corev1.Pod) string {
	if pod.Status.Phase == corev1.PodFailed {
		return fmt.Sprintf("pod %s failed: %s %s", pod.Name, pod.Status.Reason, pod.Status.Message)
	}
	for _, cs := range append(slices.Clone(pod.Status.InitContainerStatuses), pod.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && slices.Contains(podFailureReasons, w.Reason) {
			return fmt.Sprintf("pod %s container %s: %s %s", pod.Name, cs.Name, w.Reason, describeLastTermination(cs))
		}
	}
	return ""
}

func describeLastTermination(cs corev1.ContainerStatus) string {
	t := cs.LastTerminationState.Terminated
	if t == nil {
		return ""
	}
	return "(" + strings.Join(strings.Fields(fmt.Sprintf("last exit %d %s %s", t.ExitCode, t.Reason, t.Message)), " ") + ")"
}

// DescribePod says why a pod is not Ready, from its status alone.
func DescribePod(pod *corev1.Pod) string {
	if b := Broken(pod); b != "" {
		return b
	}
	var why []string
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue && (c.Reason != "" || c.Message != "") {
			why = append(why, fmt.Sprintf("%s=%s %s %s", c.Type, c.Status, c.Reason, c.Message))
		}
	}
	for _, cs := range pod.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" {
			why = append(why, fmt.Sprintf("container %s waiting: %s %s", cs.Name, w.Reason, w.Message))
		}
	}
	phase := string(pod.Status.Phase)
	if phase == "" {
		phase = "Pending"
	}
	if len(why) == 0 {
		return fmt.Sprintf("pod %s is %s, not Ready", pod.Name, phase)
	}
	sort.Strings(why)
	return fmt.Sprintf("pod %s is %s: %s", pod.Name, phase, strings.Join(collapseSpaces(why), "; "))
}

func collapseSpaces(in []string) []string {
	out := make([]string, len(in))
	for i, s := range in {
		out[i] = strings.Join(strings.Fields(s), " ")
	}
	return out
}
