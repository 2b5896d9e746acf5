package mutate

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// Placement values of api.AnnotationPlacement.
const (
	PlacementSpread     = "spread"
	PlacementOnePerSite = "one-per-site"

	defaultSeeds = 3
	// maxSeeds bounds the seed list: an environment variable of thousands
	// of addresses helps no peer and slows every container start.
	maxSeeds = 256
)

// Decision says whether a pod was changed, and why not.
type Decision struct {
	Mutated bool
	// Reason explains a skip, for the admission response and the logs.
	Reason string
	// Warnings are doubts about an admitted pod, returned as admission
	// warnings (kubectl prints them).
	Warnings []string
	// SeedsErr says the peers could not be read: the pod was mutated with
	// no seeds, and AnnotationSeedsInjected says why. The caller refuses
	// it, or admits it as it is with a warning.
	SeedsErr error
}

// AnnotationSeedsInjected is set to "false: REASON" on a pod admitted
// without seeds because the peers could not be read.
const AnnotationSeedsInjected = api.Prefix + "seeds-injected"

// OptedIn reports whether the pod or its namespace asked for the webhook.
// Pods in kube-system never are.
func OptedIn(pod *corev1.Pod, namespaceLabels map[string]string) (bool, string) {
	if pod.Namespace == metav1.NamespaceSystem {
		return false, "kube-system is never mutated"
	}
	if pod.Labels[api.LabelInject] == api.LabelInjectValue {
		return true, ""
	}
	if v, set := pod.Labels[api.LabelInject]; set {
		return false, fmt.Sprintf("pod label %s=%q opts out", api.LabelInject, v)
	}
	if namespaceLabels[api.LabelInject] == api.LabelInjectValue {
		return true, ""
	}
	return false, fmt.Sprintf("neither the pod nor its namespace has %s=%s", api.LabelInject, api.LabelInjectValue)
}

// config is the pod's parsed annotations.
type config struct {
	app       string
	sites     []string
	placement string
	// sitesValue is the sites annotation as written ("all" when absent),
	// for messages.
	sitesValue  string
	port        int
	seeds       int
	seedService string
}

// Options are what the mutation takes from its caller besides the pod and
// the view.
type Options struct {
	// SeedKey chooses the pod's seeds among the peers: "" for the pod's
	// name; a pod named by generateName has none at admission, so the caller
	// gives something unique to it (the admission request's UID).
	SeedKey string
	// SeedURL is the base URL at which peers reach the seed endpoint
	// ("http://host:port"); when set, STAGE_SEED_URL is injected with the
	// pod's query (its namespace, app, site, port and name).
	SeedURL string
}

// Mutate returns a mutated copy of pod (the original is not modified).
// Mutating an already-mutated pod changes nothing. A malformed annotation, or
// a pod the placement or the advertised address cannot work for, is an error
// whose message names the fix.
func Mutate(pod *corev1.Pod, namespaceLabels map[string]string, view View, opts Options) (*corev1.Pod, Decision, error) {
	if ok, reason := OptedIn(pod, namespaceLabels); !ok {
		return pod, Decision{Reason: reason}, nil
	}
	cfg, err := parse(pod, view)
	if err != nil {
		return nil, Decision{}, err
	}
	warnings, err := checkAdvertisedAddress(pod, cfg)
	if err != nil {
		return nil, Decision{}, err
	}
	where := place(pod, cfg)
	if err := where.checkUserSites(pod); err != nil {
		return nil, Decision{}, err
	}
	if err := where.checkUserSiteEnv(pod); err != nil {
		return nil, Decision{}, err
	}

	out := pod.DeepCopy()
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	out.Labels[api.LabelApp] = cfg.app
	requireSites(out, where.sites)
	if where.site == "" {
		if err := spreadOverSites(out, cfg); err != nil {
			return nil, Decision{}, err
		}
	}
	var seeds []string
	seedKey := firstNonEmpty(opts.SeedKey, pod.Name)
	peersErr := view.Peers(pod.Namespace, cfg.app, func(peers *ReadyPeers) {
		seeds = Addresses(SeedsFor(peers, SeedQuery{Key: seedKey, Self: pod.Name, Site: where.site, Port: cfg.port, N: cfg.seeds}))
	})
	injectEnv(out, cfg, where.site, seeds, opts.SeedURL)
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	// Always rewritten (a value the user wrote is not a record of what was
	// done), from the pod itself so that re-mutation gives the same text.
	out.Annotations[api.AnnotationInjected] = where.summary(out, cfg)
	d := Decision{Mutated: true, Warnings: warnings}
	if peersErr != nil {
		d.SeedsErr = fmt.Errorf("cannot read the peers of app %q in namespace %q: %w", cfg.app, pod.Namespace, peersErr)
		// Kept once written: a second pass (seeds or not) leaves
		// STAGE_PEER_SEEDS as the first one set it.
		if _, set := out.Annotations[AnnotationSeedsInjected]; !set {
			out.Annotations[AnnotationSeedsInjected] = "false: " + d.SeedsErr.Error()
		}
	}
	return out, d, nil
}

func parse(pod *corev1.Pod, view View) (config, error) {
	ann := pod.Annotations
	cfg := config{placement: PlacementSpread, seeds: defaultSeeds}

	cfg.app = firstNonEmpty(pod.Labels[api.LabelApp], ann[api.AnnotationApp], pod.Labels["app.kubernetes.io/name"], pod.Labels["app"])
	if cfg.app == "" {
		return cfg, fmt.Errorf("cannot tell which app this peer belongs to: set the label app.kubernetes.io/name (or app), or the annotation %s", api.AnnotationApp)
	}
	if errs := validation.IsValidLabelValue(cfg.app); len(errs) > 0 {
		return cfg, fmt.Errorf("app name %q is not a valid label value: %s", cfg.app, strings.Join(errs, "; "))
	}

	if v, ok := ann[api.AnnotationPlacement]; ok {
		if v != PlacementSpread && v != PlacementOnePerSite {
			return cfg, fmt.Errorf("annotation %s=%q: must be %q or %q", api.AnnotationPlacement, v, PlacementSpread, PlacementOnePerSite)
		}
		cfg.placement = v
	}

	var err error
	if cfg.sites, err = parseSites(ann[api.AnnotationSites], view.Sites()); err != nil {
		return cfg, err
	}
	cfg.sitesValue = firstNonEmpty(ann[api.AnnotationSites], "all")

	if v, ok := ann[api.AnnotationPort]; ok {
		cfg.port, err = strconv.Atoi(v)
		if err != nil || cfg.port < 1 || cfg.port > 65535 {
			return cfg, fmt.Errorf("annotation %s=%q: must be a port number 1-65535", api.AnnotationPort, v)
		}
	}
	if v, ok := ann[api.AnnotationSeeds]; ok {
		cfg.seeds, err = strconv.Atoi(v)
		if err != nil || cfg.seeds < 0 || cfg.seeds > maxSeeds {
			return cfg, fmt.Errorf("annotation %s=%q: must be a whole number from 0 to %d", api.AnnotationSeeds, v, maxSeeds)
		}
	}
	cfg.seedService = firstNonEmpty(ann[api.AnnotationSeedService], cfg.app)
	if errs := validation.IsDNS1123Label(cfg.seedService); len(errs) > 0 {
		return cfg, fmt.Errorf("seed service name %q (annotation %s, default the app name) is not a valid Service name: %s", cfg.seedService, api.AnnotationSeedService, strings.Join(errs, "; "))
	}
	return cfg, nil
}

// parseSites resolves the sites annotation against the known sites.
func parseSites(value string, known []string) ([]string, error) {
	value = strings.TrimSpace(value)
	if value == "" || value == "all" {
		if len(known) == 0 {
			return nil, fmt.Errorf("no site is known yet (no node has the %s label): enroll nodes with kubectl stage join first", api.LabelSite)
		}
		return known, nil
	}
	if n, err := strconv.Atoi(value); err == nil {
		if n < 1 {
			return nil, fmt.Errorf("annotation %s=%q: a site count must be at least 1", api.AnnotationSites, value)
		}
		if n > len(known) {
			return nil, fmt.Errorf("annotation %s=%q: asks for %d sites but the cluster has %d (%s)", api.AnnotationSites, value, n, len(known), strings.Join(known, ", "))
		}
		return known[:n], nil
	}
	var sites []string
	for _, s := range strings.Split(value, ",") {
		s = strings.TrimSpace(s)
		if errs := validation.IsDNS1123Label(s); len(errs) > 0 {
			return nil, fmt.Errorf("annotation %s=%q: %q is not a site name; use \"all\", a count, or site names separated by commas", api.AnnotationSites, value, s)
		}
		if !slices.Contains(known, s) {
			return nil, fmt.Errorf("annotation %s=%q: no node is at site %q; known sites: %s", api.AnnotationSites, value, s, strings.Join(known, ", "))
		}
		if !slices.Contains(sites, s) {
			sites = append(sites, s)
		}
	}
	slices.Sort(sites)
	return sites, nil
}

// requireSites ANDs "site In sites" into every required node-affinity term
// (terms are ORed, so adding to each keeps the user's alternatives while no
// alternative escapes the sites), or adds a term if there is none. A term
// already holding exactly that requirement is left alone, so re-mutation
// adds nothing.
func requireSites(pod *corev1.Pod, sites []string) {
	if pod.Spec.Affinity == nil {
		pod.Spec.Affinity = &corev1.Affinity{}
	}
	if pod.Spec.Affinity.NodeAffinity == nil {
		pod.Spec.Affinity.NodeAffinity = &corev1.NodeAffinity{}
	}
	na := pod.Spec.Affinity.NodeAffinity
	if na.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		na.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
	}
	terms := &na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(*terms) == 0 {
		*terms = append(*terms, corev1.NodeSelectorTerm{})
	}
	isOurs := func(e corev1.NodeSelectorRequirement) bool {
		return e.Key == api.LabelSite && e.Operator == corev1.NodeSelectorOpIn && slices.Equal(e.Values, sites)
	}
	for i := range *terms {
		term := &(*terms)[i]
		if !slices.ContainsFunc(term.MatchExpressions, isOurs) {
			term.MatchExpressions = append(term.MatchExpressions, corev1.NodeSelectorRequirement{Key: api.LabelSite, Operator: corev1.NodeSelectorOpIn, Values: sites})
		}
	}
}

// siteSpread is the webhook's topology spread over the app's peers: maxSkew
// 1 and DoNotSchedule, so no site gets a second peer while a chosen site has
// none. The scheduler counts the pods it has just placed (its assumed pods),
// so this holds when many pods are created at once, which no count taken at
// admission can: N pods over N sites are one per site. For one-per-site,
// MinDomains (the number of sites) keeps that true while a site has no
// schedulable node: the pod waits instead of doubling up elsewhere; and
// MatchLabelKeys counts a Deployment's pods per ReplicaSet, so a rolling
// update spreads the new pods among themselves, not around the old ones.
func siteSpread(cfg config) corev1.TopologySpreadConstraint {
	c := corev1.TopologySpreadConstraint{
		MaxSkew:           1,
		TopologyKey:       api.LabelSite,
		WhenUnsatisfiable: corev1.DoNotSchedule,
		LabelSelector:     &metav1.LabelSelector{MatchLabels: map[string]string{api.LabelApp: cfg.app}},
	}
	if cfg.placement == PlacementOnePerSite {
		c.MinDomains = ptr.To(int32(len(cfg.sites)))
		c.MatchLabelKeys = []string{appsv1.DefaultDeploymentUniqueLabelKey}
	}
	return c
}

// isSpread reports whether c is ours. The API server merges the
// MatchLabelKeys' values into the stored selector, so a pod created from a
// stored one carries them; they are not the user's.
func isSpread(c, ours corev1.TopologySpreadConstraint) bool {
	if c.LabelSelector != nil && len(c.MatchLabelKeys) > 0 {
		merged := c.LabelSelector.DeepCopy()
		merged.MatchExpressions = slices.DeleteFunc(merged.MatchExpressions, func(e metav1.LabelSelectorRequirement) bool {
			return slices.Contains(c.MatchLabelKeys, e.Key)
		})
		if len(merged.MatchExpressions) == 0 {
			merged.MatchExpressions = nil
		}
		c.LabelSelector = merged
	}
	return equality.Semantic.DeepEqual(c, ours)
}

// spreadOverSites adds siteSpread. Under spread, a constraint the user wrote
// on the site label is kept instead; one-per-site guarantees its placement
// only with its own, so it refuses another.
func spreadOverSites(pod *corev1.Pod, cfg config) error {
	ours := siteSpread(cfg)
	for _, c := range pod.Spec.TopologySpreadConstraints {
		if c.TopologyKey != api.LabelSite || isSpread(c, ours) {
			continue
		}
		if cfg.placement == PlacementOnePerSite {
			return fmt.Errorf("%s=%s spreads the pods itself (maxSkew 1, DoNotSchedule on %s over the app's pods), but the pod has its own spread constraint on %s: remove it, or use %s=%s to keep yours",
				api.AnnotationPlacement, PlacementOnePerSite, api.LabelSite, api.LabelSite, api.AnnotationPlacement, PlacementSpread)
		}
		return nil
	}
	if !slices.ContainsFunc(pod.Spec.TopologySpreadConstraints, func(c corev1.TopologySpreadConstraint) bool { return isSpread(c, ours) }) {
		pod.Spec.TopologySpreadConstraints = append(pod.Spec.TopologySpreadConstraints, ours)
	}
	return nil
}

// statefulSetOrdinal returns the ordinal of a StatefulSet's pod. Such pods
// are placed by ordinal (the N-th site for ordinal N): unlike counting peers,
// that holds when a Parallel StatefulSet creates all its pods at once, and
// a pod recreated by a restart or a rollout returns to its site.
func statefulSetOrdinal(pod *corev1.Pod) (int, bool) {
	owner := metav1.GetControllerOf(pod)
	if owner == nil || owner.Kind != "StatefulSet" {
		return 0, false
	}
	suffix, ok := strings.CutPrefix(pod.Name, owner.Name+"-")
	if !ok {
		return 0, false
	}
	ordinal, err := strconv.Atoi(suffix)
	return ordinal, err == nil && ordinal >= 0
}

func address(ip string, port int) string {
	if port == 0 {
		return ip
	}
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("[%s]:%d", ip, port)
	}
	return fmt.Sprintf("%s:%d", ip, port)
}

// injectEnv adds the advertisement and seed variables to every container
// and init container; a variable the user already defined in env is left
// alone (checkUserSiteEnv has refused a STAGE_SITE that is not the site).
func injectEnv(pod *corev1.Pod, cfg config, site string, seeds []string, seedURL string) {
	vars := []corev1.EnvVar{
		{Name: api.EnvAdvertiseIP, ValueFrom: fieldRef("status.hostIP")},
		{Name: api.EnvNodeName, ValueFrom: fieldRef("spec.nodeName")},
		{Name: api.EnvPodName, ValueFrom: fieldRef("metadata.name")},
		siteVar(site),
	}
	if cfg.port != 0 {
		// $(VAR) expands variables defined earlier in the list.
		vars = append(vars, corev1.EnvVar{Name: api.EnvAdvertiseAddr, Value: fmt.Sprintf("$(%s):%d", api.EnvAdvertiseIP, cfg.port)})
	}
	vars = append(vars,
		corev1.EnvVar{Name: api.EnvPeerSeeds, Value: strings.Join(seeds, ",")},
		corev1.EnvVar{Name: api.EnvSeedDNS, Value: fmt.Sprintf("%s.%s.svc.cluster.local", cfg.seedService, pod.Namespace)},
	)
	if seedURL != "" {
		vars = append(vars, corev1.EnvVar{Name: api.EnvSeedURL, Value: SeedURL(seedURL, pod.Namespace, cfg.app, cfg.port)})
	}
	for _, c := range containers(pod) {
		for _, v := range vars {
			if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == v.Name }) {
				c.Env = append(c.Env, v)
			}
		}
	}
}

// siteVar is STAGE_SITE: the pinned site, or, when the scheduler picks the
// site, the zone label the API server copies from the node at binding.
func siteVar(site string) corev1.EnvVar {
	if site != "" {
		return corev1.EnvVar{Name: api.EnvSite, Value: site}
	}
	return zoneSiteVar
}

var zoneSiteVar = corev1.EnvVar{Name: api.EnvSite, ValueFrom: fieldRef("metadata.labels['" + api.LabelZone + "']")}

// containers are the pod's init containers and containers, for editing.
func containers(pod *corev1.Pod) []*corev1.Container {
	var all []*corev1.Container
	for _, list := range [][]corev1.Container{pod.Spec.InitContainers, pod.Spec.Containers} {
		for i := range list {
			all = append(all, &list[i])
		}
	}
	return all
}

func fieldRef(path string) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path}}
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
