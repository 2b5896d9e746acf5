package mutate

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

var view = StaticView{
	SiteNames: []string{"frankfurt", "osaka", "tokyo"},
	PeersByApp: map[string][]Peer{
		"p2p/gossip": {
			{Name: "gossip-0", Site: "tokyo", HostIP: "10.23.0.2", Ready: true, HostNetwork: true},
			{Name: "gossip-1", Site: "tokyo", HostIP: "10.23.0.3", Ready: true, HostNetwork: true},
			{Name: "gossip-2", Site: "osaka", HostIP: "10.23.0.4", Ready: true, HostNetwork: true},
			{Name: "gossip-3", Site: "frankfurt", HostIP: "10.23.0.5", Ready: false, HostNetwork: true},
		},
	},
}

func pod(mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: "gossip-9", Namespace: "p2p",
			Labels:      map[string]string{"app": "gossip", api.LabelInject: api.LabelInjectValue},
			Annotations: map[string]string{},
		},
		// On the host network, so that its node's IP reaches it.
		Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "node", Image: "gossip:v1"}}},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func annotate(k, v string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Annotations[k] = v } }

func env(p *corev1.Pod, name string) (corev1.EnvVar, bool) {
	for _, e := range p.Spec.Containers[0].Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// seedList are STAGE_PEER_SEEDS' addresses, in their order.
func seedList(value string) []string {
	if value == "" {
		return nil
	}
	return strings.Split(value, ",")
}

// sameSeeds reports whether value lists want in any order.
func sameSeeds(value string, want ...string) bool {
	got := seedList(value)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func siteRequirement(t *testing.T, p *corev1.Pod, term int) []string {
	t.Helper()
	terms := p.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	for _, e := range terms[term].MatchExpressions {
		if e.Key == api.LabelSite {
			return e.Values
		}
	}
	t.Fatalf("term %d has no site requirement: %+v", term, terms[term])
	return nil
}

func TestSkips(t *testing.T) {
	tests := []struct {
		name   string
		pod    *corev1.Pod
		nsOpts map[string]string
		want   string
	}{
		{"not opted in", pod(func(p *corev1.Pod) { delete(p.Labels, api.LabelInject) }), nil, "neither the pod nor its namespace"},
		{"kube-system", pod(func(p *corev1.Pod) { p.Namespace = "kube-system" }), nil, "kube-system is never mutated"},
		{"pod opts out of its namespace", pod(func(p *corev1.Pod) { p.Labels[api.LabelInject] = "disabled" }), map[string]string{api.LabelInject: api.LabelInjectValue}, "opts out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, d, err := Mutate(tt.pod, tt.nsOpts, view, Options{})
			if err != nil || d.Mutated || got != tt.pod || !strings.Contains(d.Reason, tt.want) {
				t.Errorf("= mutated %v reason %q err %v; want skip %q", d.Mutated, d.Reason, err, tt.want)
			}
		})
	}
	nsPod := pod(func(p *corev1.Pod) { delete(p.Labels, api.LabelInject) })
	if _, d, err := Mutate(nsPod, map[string]string{api.LabelInject: api.LabelInjectValue}, view, Options{}); err != nil || !d.Mutated {
		t.Errorf("namespace opt-in not honoured: %v %v", d, err)
	}
}

func TestSpreadAcrossAllSites(t *testing.T) {
	got, _, err := Mutate(pod(annotate(api.AnnotationPort, "30303")), nil, view, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sites := siteRequirement(t, got, 0); strings.Join(sites, ",") != "frankfurt,osaka,tokyo" {
		t.Errorf("sites = %v", sites)
	}
	if n := len(got.Spec.TopologySpreadConstraints); n != 1 || got.Spec.TopologySpreadConstraints[0].TopologyKey != api.LabelSite {
		t.Errorf("spread constraints = %+v", got.Spec.TopologySpreadConstraints)
	}
	if got.Labels[api.LabelApp] != "gossip" {
		t.Errorf("app label = %q", got.Labels[api.LabelApp])
	}
	ip, _ := env(got, api.EnvAdvertiseIP)
	if ip.ValueFrom == nil || ip.ValueFrom.FieldRef.FieldPath != "status.hostIP" {
		t.Errorf("%s = %+v, want the host (overlay) IP", api.EnvAdvertiseIP, ip)
	}
	if addr, _ := env(got, api.EnvAdvertiseAddr); addr.Value != "$(STAGE_ADVERTISE_IP):30303" {
		t.Errorf("%s = %q", api.EnvAdvertiseAddr, addr.Value)
	}
	if site, _ := env(got, api.EnvSite); site.ValueFrom == nil || site.ValueFrom.FieldRef.FieldPath != "metadata.labels['topology.kubernetes.io/zone']" {
		t.Errorf("%s = %+v", api.EnvSite, site)
	}
	// Ready peers only, one per site first (osaka's and one of tokyo's),
	// then tokyo's other.
	seeds, _ := env(got, api.EnvPeerSeeds)
	if list := seedList(seeds.Value); len(list) != 3 || !slices.Contains(list[:2], "10.23.0.4:30303") || !sameSeeds(seeds.Value, "10.23.0.2:30303", "10.23.0.3:30303", "10.23.0.4:30303") {
		t.Errorf("seeds = %q", seeds.Value)
	}
	if dns, _ := env(got, api.EnvSeedDNS); dns.Value != "gossip.p2p.svc.cluster.local" {
		t.Errorf("seed DNS = %q", dns.Value)
	}
}

// A one-per-site pod that is not a StatefulSet's is not pinned at admission,
// where pods admitted but not yet scheduled are at no site: the scheduler
// spreads it (maxSkew 1, DoNotSchedule), counting the pods it just placed.
func TestOnePerSiteSpreadsOtherPods(t *testing.T) {
	got, _, err := Mutate(pod(annotate(api.AnnotationPlacement, PlacementOnePerSite), annotate(api.AnnotationSeeds, "2")), nil, view, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if sites := siteRequirement(t, got, 0); strings.Join(sites, ",") != "frankfurt,osaka,tokyo" {
		t.Errorf("required sites %v, want all three", sites)
	}
	want := corev1.TopologySpreadConstraint{
		MaxSkew: 1, TopologyKey: api.LabelSite, WhenUnsatisfiable: corev1.DoNotSchedule, MinDomains: ptr.To(int32(3)),
		LabelSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{api.LabelApp: "gossip"}},
		MatchLabelKeys: []string{"pod-template-hash"},
	}
	if c := got.Spec.TopologySpreadConstraints; len(c) != 1 || !equality.Semantic.DeepEqual(c[0], want) {
		t.Errorf("spread constraints = %+v, want exactly %+v", c, want)
	}
	// As stored: the API server merged the pod's pod-template-hash into the
	// selector. A pod created from it is still the webhook's.
	stored := got.DeepCopy()
	stored.Spec.TopologySpreadConstraints[0].LabelSelector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "pod-template-hash", Operator: metav1.LabelSelectorOpIn, Values: []string{"5dd7b5d849"}}}
	if again, _, err := Mutate(stored, nil, view, Options{}); err != nil || !equality.Semantic.DeepEqual(again, stored) {
		t.Errorf("a stored one-per-site pod mutated again: err %v, changed %v", err, !equality.Semantic.DeepEqual(again, stored))
	}
	if site, _ := env(got, api.EnvSite); !equality.Semantic.DeepEqual(site, zoneSiteVar) {
		t.Errorf("%s = %+v, want the zone label through the downward API", api.EnvSite, site)
	}
	if seeds, _ := env(got, api.EnvPeerSeeds); !sameSeeds(seeds.Value, "10.23.0.2", "10.23.0.4") && !sameSeeds(seeds.Value, "10.23.0.3", "10.23.0.4") {
		t.Errorf("seeds = %q, want round-robin over sites, 2 of them", seeds.Value)
	}

	// One-per-site holds only with its own spread constraint.
	user := pod(annotate(api.AnnotationPlacement, PlacementOnePerSite), func(p *corev1.Pod) {
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 2, TopologyKey: api.LabelSite, WhenUnsatisfiable: corev1.ScheduleAnyway}}
	})
	_, _, err = Mutate(user, nil, view, Options{})
	wantErr := "kubectl-stage.io/placement=one-per-site spreads the pods itself (maxSkew 1, DoNotSchedule on kubectl-stage.io/site over the app's pods), " +
		"but the pod has its own spread constraint on kubectl-stage.io/site: remove it, or use kubectl-stage.io/placement=spread to keep yours"
	if err == nil || err.Error() != wantErr {
		t.Errorf("error = %v\nwant %q", err, wantErr)
	}
}

func TestMergesWithUserAffinityAndEnv(t *testing.T) {
	user := pod(annotate(api.AnnotationSites, "osaka, tokyo"), func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
				{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "disk", Operator: corev1.NodeSelectorOpIn, Values: []string{"ssd"}}}},
				{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"big-1"}}}},
			}},
			PreferredDuringSchedulingIgnoredDuringExecution: []corev1.PreferredSchedulingTerm{{Weight: 5, Preference: corev1.NodeSelectorTerm{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "cpu", Operator: corev1.NodeSelectorOpExists}}}}},
		}}
		p.Spec.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 2, TopologyKey: api.LabelSite, WhenUnsatisfiable: corev1.ScheduleAnyway}}
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: api.EnvPeerSeeds, Value: "1.2.3.4:1"}}
		p.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
	})
	got, _, err := Mutate(user, nil, view, Options{})
	if err != nil {
		t.Fatal(err)
	}
	na := got.Spec.Affinity.NodeAffinity
	terms := na.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	if len(terms) != 2 || terms[0].MatchExpressions[0].Key != "disk" || len(terms[1].MatchFields) != 1 {
		t.Fatalf("user terms changed: %+v", terms)
	}
	for i := range terms {
		if sites := siteRequirement(t, got, i); strings.Join(sites, ",") != "osaka,tokyo" {
			t.Errorf("term %d sites = %v", i, sites)
		}
	}
	if len(na.PreferredDuringSchedulingIgnoredDuringExecution) != 1 {
		t.Error("preferred terms dropped")
	}
	if c := got.Spec.TopologySpreadConstraints; len(c) != 1 || c[0].MaxSkew != 2 {
		t.Errorf("the user's spread constraint was replaced: %+v", c)
	}
	if seeds, _ := env(got, api.EnvPeerSeeds); seeds.Value != "1.2.3.4:1" {
		t.Errorf("the user's %s was overwritten: %q", api.EnvPeerSeeds, seeds.Value)
	}
	if len(got.Spec.InitContainers[0].Env) == 0 {
		t.Error("init containers get no advertisement variables")
	}
	if user.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions[0].Key != "disk" ||
		len(user.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms[0].MatchExpressions) != 1 {
		t.Error("Mutate modified its input")
	}
}

func TestIdempotent(t *testing.T) {
	for _, placement := range []string{PlacementSpread, PlacementOnePerSite} {
		once, _, err := Mutate(pod(annotate(api.AnnotationPlacement, placement), annotate(api.AnnotationPort, "4001")), nil, view, Options{})
		if err != nil {
			t.Fatal(err)
		}
		// The second pass sees a cluster where more peers exist: it must
		// still change nothing.
		busier := StaticView{SiteNames: view.SiteNames, PeersByApp: map[string][]Peer{"p2p/gossip": append(slices.Clone(view.PeersByApp["p2p/gossip"]),
			Peer{Name: "gossip-7", Site: "frankfurt", HostIP: "10.23.0.9", Ready: true})}}
		twice, _, err := Mutate(once, nil, busier, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(once, twice) {
			t.Errorf("%s: a second mutation changed the pod", placement)
		}
	}
}

func TestFirstPeerGetsNoSeeds(t *testing.T) {
	got, _, err := Mutate(pod(func(p *corev1.Pod) { p.Labels["app"] = "fresh" }), nil, view, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if seeds, ok := env(got, api.EnvPeerSeeds); !ok || seeds.Value != "" {
		t.Errorf("first peer: %s = %+v, want present and empty", api.EnvPeerSeeds, seeds)
	}
}

func TestSeedCountLimits(t *testing.T) {
	many := make([]Peer, 2000)
	for i := range many {
		many[i] = Peer{Name: fmt.Sprintf("p-%d", i), Site: []string{"a", "b", "c"}[i%3], HostIP: fmt.Sprintf("10.23.%d.%d", i/250, i%250+1), Ready: true, HostNetwork: true}
	}
	big := StaticView{SiteNames: []string{"a", "b", "c"}, PeersByApp: map[string][]Peer{"p2p/gossip": many}}
	got, _, err := Mutate(pod(annotate(api.AnnotationSeeds, "256")), nil, big, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if seeds, _ := env(got, api.EnvPeerSeeds); strings.Count(seeds.Value, ",") != 255 {
		t.Errorf("got %d seeds, want 256", strings.Count(seeds.Value, ",")+1)
	}
	none, _, _ := Mutate(pod(annotate(api.AnnotationSeeds, "0")), nil, big, Options{})
	if seeds, _ := env(none, api.EnvPeerSeeds); seeds.Value != "" {
		t.Errorf("seeds=0 gave %q", seeds.Value)
	}
}

func TestMalformedAnnotations(t *testing.T) {
	tests := []struct {
		name string
		pod  *corev1.Pod
		want string
	}{
		{"placement", pod(annotate(api.AnnotationPlacement, "random")), `annotation kubectl-stage.io/placement="random": must be "spread" or "one-per-site"`},
		{"port", pod(annotate(api.AnnotationPort, "http")), `annotation kubectl-stage.io/port="http": must be a port number 1-65535`},
		{"seeds word", pod(annotate(api.AnnotationSeeds, "lots")), "must be a whole number from 0 to 256"},
		{"seeds huge", pod(annotate(api.AnnotationSeeds, "100000000000000000000")), "must be a whole number from 0 to 256"},
		{"seeds negative", pod(annotate(api.AnnotationSeeds, "-1")), "must be a whole number from 0 to 256"},
		{"site name", pod(annotate(api.AnnotationSites, "tokyo,Osaka_2")), `"Osaka_2" is not a site name`},
		{"unknown site", pod(annotate(api.AnnotationSites, "tokyo,mars")), `no node is at site "mars"; known sites: frankfurt, osaka, tokyo`},
		{"site count", pod(annotate(api.AnnotationSites, "7")), "asks for 7 sites but the cluster has 3 (frankfurt, osaka, tokyo)"},
		{"site count zero", pod(annotate(api.AnnotationSites, "0")), "at least 1"},
		{"no app", pod(func(p *corev1.Pod) { delete(p.Labels, "app") }), "cannot tell which app"},
		{"bad seed service", pod(annotate(api.AnnotationSeedService, "Not A Name")), "is not a valid Service name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := Mutate(tt.pod, nil, view, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want %q", err, tt.want)
			}
		})
	}
	if _, _, err := Mutate(pod(), nil, StaticView{}, Options{}); err == nil || !strings.Contains(err.Error(), "no site is known yet") {
		t.Errorf("no sites: %v", err)
	}
}

// StatefulSet pods go to the site of their ordinal, whatever the peer
// counts say: a Parallel StatefulSet admits all its pods before any exists.
func TestOnePerSitePlacesStatefulSetPodsByOrdinal(t *testing.T) {
	tests := []struct {
		name, owner, ownerKind string
		want                   string
	}{
		{"gossip-0", "gossip", "StatefulSet", "frankfurt"},
		{"gossip-1", "gossip", "StatefulSet", "osaka"},
		{"gossip-2", "gossip", "StatefulSet", "tokyo"},
		{"gossip-4", "gossip", "StatefulSet", "osaka"}, // wraps around
		{"gossip-x", "gossip", "StatefulSet", ""},      // no ordinal: spread by the scheduler
		{"web-2", "web", "ReplicaSet", ""},             // not a StatefulSet: spread by the scheduler
	}
	for _, tt := range tests {
		t.Run(tt.name+"/"+tt.ownerKind, func(t *testing.T) {
			p := pod(annotate(api.AnnotationPlacement, PlacementOnePerSite), func(p *corev1.Pod) {
				p.Name = tt.name
				controller := true
				p.OwnerReferences = []metav1.OwnerReference{{Kind: tt.ownerKind, Name: tt.owner, Controller: &controller}}
			})
			got, _, err := Mutate(p, nil, view, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sites, pinned := siteRequirement(t, got, 0), ""
			if len(sites) == 1 {
				pinned = sites[0]
			}
			if pinned != tt.want {
				t.Errorf("pinned to %v, want %q (empty: not pinned)", sites, tt.want)
			}
			if site, _ := env(got, api.EnvSite); !equality.Semantic.DeepEqual(site, siteVar(tt.want)) {
				t.Errorf("%s = %+v, want %+v", api.EnvSite, site, siteVar(tt.want))
			}
		})
	}
}
