package mutate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// siteKeys are the node labels that name a node's site (join sets both), so
// a user's expression on either constrains the site.
var siteKeys = []string{api.LabelSite, api.LabelZone}

// placement is where the webhook places a pod. It is derived from the
// annotations and the pod's identity only, never from a value the user
// wrote for the webhook to read back (an env var, an affinity term).
type placement struct {
	// sites the pod may run at: the chosen sites, or the one it is pinned to.
	sites []string
	// site is the pinned site; "" when the scheduler picks among sites.
	site string
	// everySite: one-per-site by spreading, which needs every chosen site
	// open to the pod.
	everySite bool
	// why says what decided sites, for refusals.
	why string
}

// place decides the placement. A StatefulSet's pod N is pinned to the N-th
// site: an ordinal is race-free and a recreated pod returns to its site.
// Any other one-per-site pod is spread by the scheduler (siteSpread), which
// is exact under bursts where a count of peers at admission is not: pods
// admitted but not yet scheduled are at no site yet.
func place(pod *corev1.Pod, cfg config) placement {
	annotation := fmt.Sprintf("annotation %s=%q", api.AnnotationSites, cfg.sitesValue)
	if cfg.placement != PlacementOnePerSite {
		return placement{sites: cfg.sites, why: annotation}
	}
	if ordinal, ok := statefulSetOrdinal(pod); ok {
		site := cfg.sites[ordinal%len(cfg.sites)]
		return placement{sites: []string{site}, site: site, why: fmt.Sprintf("%s=%s for StatefulSet pod %d of %s", api.AnnotationPlacement, PlacementOnePerSite, ordinal, annotation)}
	}
	return placement{sites: cfg.sites, everySite: true, why: fmt.Sprintf("%s=%s over %s", api.AnnotationPlacement, PlacementOnePerSite, annotation)}
}

// checkUserSites refuses a pod whose own nodeSelector or node-affinity term
// contradicts the placement. The webhook ANDs the sites into every term, so
// such a term could never match: an ORed term naming another site would
// otherwise have been a way around the annotation, and a silent dead term
// or unschedulable pod is worse than a refusal.
func (pl placement) checkUserSites(pod *corev1.Pod) error {
	for _, key := range siteKeys {
		if v, ok := pod.Spec.NodeSelector[key]; ok {
			if err := pl.allows(fmt.Sprintf("nodeSelector %s=%s", key, v), func(site string) bool { return site == v }); err != nil {
				return err
			}
		}
	}
	affinity := pod.Spec.Affinity
	if affinity == nil || affinity.NodeAffinity == nil || affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return nil
	}
	for i, term := range affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		var own []corev1.NodeSelectorRequirement
		var shown []string
		for _, e := range term.MatchExpressions {
			if slices.Contains(siteKeys, e.Key) {
				own = append(own, e)
				shown = append(shown, fmt.Sprintf("%s %s [%s]", e.Key, e.Operator, strings.Join(e.Values, ",")))
			}
		}
		if len(own) == 0 {
			continue
		}
		what := fmt.Sprintf("node affinity term %d requires %s", i+1, strings.Join(shown, " and "))
		if err := pl.allows(what, func(site string) bool {
			return !slices.ContainsFunc(own, func(e corev1.NodeSelectorRequirement) bool { return !siteMatches(e, site) })
		}); err != nil {
			return err
		}
	}
	return nil
}

// allows checks one of the user's site constraints against the placement.
func (pl placement) allows(what string, admits func(site string) bool) error {
	var excluded []string
	for _, s := range pl.sites {
		if !admits(s) {
			excluded = append(excluded, s)
		}
	}
	switch {
	case len(excluded) == len(pl.sites):
		return fmt.Errorf("%s, which allows none of %s (%s): remove the site expression (the webhook adds the site requirement to every term itself) or change the annotation",
			what, strings.Join(pl.sites, ", "), pl.why)
	case pl.everySite && len(excluded) > 0:
		return fmt.Errorf("%s, which excludes %s, but %s needs every one of its sites: remove the site expression, or name only the sites you want in %s",
			what, strings.Join(excluded, ", "), pl.why, api.AnnotationSites)
	}
	return nil
}

// siteMatches evaluates a node selector requirement on a node whose site
// label is site, as the scheduler would.
func siteMatches(e corev1.NodeSelectorRequirement, site string) bool {
	switch e.Operator {
	case corev1.NodeSelectorOpIn:
		return slices.Contains(e.Values, site)
	case corev1.NodeSelectorOpNotIn:
		return !slices.Contains(e.Values, site)
	case corev1.NodeSelectorOpExists:
		return true
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(e.Values) != 1 {
			return false
		}
		n, err := strconv.ParseInt(site, 10, 64)
		bound, boundErr := strconv.ParseInt(e.Values[0], 10, 64)
		if err != nil || boundErr != nil {
			return false
		}
		return (e.Operator == corev1.NodeSelectorOpGt && n > bound) || (e.Operator == corev1.NodeSelectorOpLt && n < bound)
	}
	return false // DoesNotExist: every placed node has a site
}

// checkUserSiteEnv refuses a STAGE_SITE the user wrote unless it is what the
// webhook sets (or the zone label, which is the site wherever the pod runs):
// the peer acts on it as the truth, and it never decides the placement.
func (pl placement) checkUserSiteEnv(pod *corev1.Pod) error {
	want := siteVar(pl.site)
	for _, c := range containers(pod) {
		for _, e := range c.Env {
			if e.Name != api.EnvSite || equality.Semantic.DeepEqual(e, want) || equality.Semantic.DeepEqual(e, zoneSiteVar) {
				continue
			}
			value := fmt.Sprintf("%q", e.Value)
			if e.ValueFrom != nil {
				value = "from a reference"
			}
			where := "the site the scheduler picks among " + strings.Join(pl.sites, ", ") + ", read from the pod's zone label"
			if pl.site != "" {
				where = pl.site
			}
			return fmt.Errorf("container %q sets %s=%s, but the webhook sets %s to the pod's site (%s): remove %s from the container's env",
				c.Name, api.EnvSite, value, api.EnvSite, where, api.EnvSite)
		}
	}
	return nil
}

// summary is the injected annotation: what was done, computed from the
// mutated pod so that mutating again gives the same text.
func (pl placement) summary(pod *corev1.Pod, cfg config) string {
	s := fmt.Sprintf("app=%s placement=%s sites=%s", cfg.app, cfg.placement, strings.Join(cfg.sites, ","))
	if pl.site != "" {
		s += " site=" + pl.site
	}
	seeds := 0
	for _, c := range pod.Spec.Containers[:min(1, len(pod.Spec.Containers))] {
		for _, e := range c.Env {
			if e.Name == api.EnvPeerSeeds && e.Value != "" {
				seeds = strings.Count(e.Value, ",") + 1
			}
		}
	}
	return fmt.Sprintf("%s seeds=%d", s, seeds)
}
