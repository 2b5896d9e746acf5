package mutate

import (
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// requireTerms gives the pod required node-affinity terms, one per list of
// expressions.
func requireTerms(terms ...[]corev1.NodeSelectorRequirement) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		selector := &corev1.NodeSelector{}
		for _, exprs := range terms {
			selector.NodeSelectorTerms = append(selector.NodeSelectorTerms, corev1.NodeSelectorTerm{MatchExpressions: exprs})
		}
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: selector}}
	}
}

func expr(key string, op corev1.NodeSelectorOperator, values ...string) []corev1.NodeSelectorRequirement {
	return []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}
}

func ownedByStatefulSet(name string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Name = name
		p.OwnerReferences = []metav1.OwnerReference{{Kind: "StatefulSet", Name: "gossip", Controller: ptr.To(true)}}
	}
}

func setEnv(e corev1.EnvVar) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, e) }
}

// mutateTwice mutates pod, then the result, and fails unless the second
// pass changes nothing.
func mutateTwice(t *testing.T, pod *corev1.Pod) (*corev1.Pod, Decision, error) {
	t.Helper()
	got, d, err := Mutate(pod, nil, view, Options{})
	if err != nil {
		return got, d, err
	}
	again, _, err := Mutate(got, nil, view, Options{})
	if err != nil || !equality.Semantic.DeepEqual(got, again) {
		t.Errorf("mutating the mutated pod changed it (err %v)", err)
	}
	return got, d, nil
}

// The sites are ANDed into every required term whatever site expressions the
// user wrote; a term (or nodeSelector) whose own site expressions cannot hold
// together with the placement is refused, naming both.
func TestSiteRequirementIsANDedIntoEveryTerm(t *testing.T) {
	disk := expr("disktype", corev1.NodeSelectorOpIn, "ssd")
	tokyoOsaka := annotate(api.AnnotationSites, "tokyo,osaka")
	onePerSite := annotate(api.AnnotationPlacement, PlacementOnePerSite)
	tests := []struct {
		name    string
		pod     *corev1.Pod
		want    string // the sites ANDed into every term
		wantErr string
	}{
		{"an ORed term at another site", pod(tokyoOsaka, requireTerms(disk, expr(api.LabelSite, corev1.NodeSelectorOpIn, "frankfurt"))), "",
			`node affinity term 2 requires kubectl-stage.io/site In [frankfurt], which allows none of osaka, tokyo (annotation kubectl-stage.io/sites="tokyo,osaka"): ` +
				"remove the site expression (the webhook adds the site requirement to every term itself) or change the annotation"},
		{"NotIn", pod(tokyoOsaka, requireTerms(expr(api.LabelSite, corev1.NodeSelectorOpNotIn, "tokyo"))), "osaka,tokyo", ""},
		{"a term that narrows the sites", pod(tokyoOsaka, requireTerms(disk, expr(api.LabelSite, corev1.NodeSelectorOpIn, "tokyo", "frankfurt"))), "osaka,tokyo", ""},
		{"two expressions that only together exclude every site", pod(tokyoOsaka, requireTerms(append(expr(api.LabelSite, corev1.NodeSelectorOpNotIn, "tokyo"),
			expr(api.LabelSite, corev1.NodeSelectorOpIn, "tokyo", "frankfurt")...))), "",
			"node affinity term 1 requires kubectl-stage.io/site NotIn [tokyo] and kubectl-stage.io/site In [tokyo,frankfurt], which allows none of osaka, tokyo"},
		{"the zone label names the site too", pod(annotate(api.AnnotationSites, "osaka"), requireTerms(expr(api.LabelZone, corev1.NodeSelectorOpIn, "frankfurt"))), "",
			`node affinity term 1 requires topology.kubernetes.io/zone In [frankfurt], which allows none of osaka (annotation kubectl-stage.io/sites="osaka")`},
		{"a nodeSelector at another site", pod(tokyoOsaka, func(p *corev1.Pod) { p.Spec.NodeSelector = map[string]string{api.LabelSite: "frankfurt"} }), "",
			`nodeSelector kubectl-stage.io/site=frankfurt, which allows none of osaka, tokyo (annotation kubectl-stage.io/sites="tokyo,osaka")`},
		{"DoesNotExist", pod(requireTerms(expr(api.LabelSite, corev1.NodeSelectorOpDoesNotExist))), "",
			"node affinity term 1 requires kubectl-stage.io/site DoesNotExist [], which allows none of frankfurt, osaka, tokyo"},
		{"Exists", pod(requireTerms(expr(api.LabelSite, corev1.NodeSelectorOpExists))), "frankfurt,osaka,tokyo", ""},
		{"one-per-site needs every chosen site", pod(onePerSite, requireTerms(expr(api.LabelSite, corev1.NodeSelectorOpNotIn, "tokyo"))), "",
			`node affinity term 1 requires kubectl-stage.io/site NotIn [tokyo], which excludes tokyo, but kubectl-stage.io/placement=one-per-site over annotation kubectl-stage.io/sites="all" needs every one of its sites: ` +
				"remove the site expression, or name only the sites you want in kubectl-stage.io/sites"},
		{"a StatefulSet pod pinned elsewhere", pod(onePerSite, ownedByStatefulSet("gossip-1"), requireTerms(expr(api.LabelSite, corev1.NodeSelectorOpIn, "tokyo"))), "",
			`node affinity term 1 requires kubectl-stage.io/site In [tokyo], which allows none of osaka (kubectl-stage.io/placement=one-per-site for StatefulSet pod 1 of annotation kubectl-stage.io/sites="all")`},
		{"a StatefulSet pod pinned inside the user's sites", pod(onePerSite, ownedByStatefulSet("gossip-2"), requireTerms(expr(api.LabelSite, corev1.NodeSelectorOpIn, "tokyo", "osaka"))), "tokyo", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := mutateTwice(t, tt.pod)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v\nwant %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			userTerms := tt.pod.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
			for i, term := range got.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				exprs := term.MatchExpressions
				if ours := exprs[len(exprs)-1]; ours.Key != api.LabelSite || ours.Operator != corev1.NodeSelectorOpIn || strings.Join(ours.Values, ",") != tt.want {
					t.Errorf("term %d ends with %+v, want %s In [%s]", i+1, ours, api.LabelSite, tt.want)
				}
				if !equality.Semantic.DeepEqual(exprs[:len(exprs)-1], userTerms[i].MatchExpressions) {
					t.Errorf("term %d: the user's expressions changed: %+v", i+1, exprs)
				}
			}
		})
	}
}

// STAGE_SITE is the webhook's: a value the user wrote never places the pod,
// and is refused unless it is the value the webhook gives.
func TestSiteVariableIsTheWebhooks(t *testing.T) {
	onePerSite := annotate(api.AnnotationPlacement, PlacementOnePerSite)
	literal := func(v string) func(*corev1.Pod) { return setEnv(corev1.EnvVar{Name: api.EnvSite, Value: v}) }
	tests := []struct {
		name    string
		pod     *corev1.Pod
		wantErr string
	}{
		{"a site that does not exist", pod(onePerSite, literal("my-dc")),
			`container "node" sets STAGE_SITE="my-dc", but the webhook sets STAGE_SITE to the pod's site (the site the scheduler picks among frankfurt, osaka, tokyo, read from the pod's zone label): remove STAGE_SITE from the container's env`},
		{"a chosen site on a pod the scheduler places", pod(literal("tokyo")), `container "node" sets STAGE_SITE="tokyo", but the webhook sets STAGE_SITE`},
		{"another site than the ordinal's", pod(onePerSite, ownedByStatefulSet("gossip-2"), literal("osaka")),
			`container "node" sets STAGE_SITE="osaka", but the webhook sets STAGE_SITE to the pod's site (tokyo): remove STAGE_SITE from the container's env`},
		{"the ordinal's site", pod(onePerSite, ownedByStatefulSet("gossip-2"), literal("tokyo")), ""},
		{"the zone label", pod(setEnv(zoneSiteVar)), ""},
		{"the zone label on a pinned pod", pod(onePerSite, ownedByStatefulSet("gossip-2"), setEnv(zoneSiteVar)), ""},
		{"from a ConfigMap", pod(setEnv(corev1.EnvVar{Name: api.EnvSite, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "site"}}})),
			`container "node" sets STAGE_SITE=from a reference, but the webhook sets STAGE_SITE`},
		{"in an init container", pod(func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: "init", Env: []corev1.EnvVar{{Name: api.EnvSite, Value: "tokyo"}}}}
		}), `container "init" sets STAGE_SITE="tokyo"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := mutateTwice(t, tt.pod)
			if tt.wantErr == "" && err != nil {
				t.Fatal(err)
			}
			if tt.wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Errorf("error = %v\nwant %q", err, tt.wantErr)
			}
		})
	}
}

// STAGE_ADVERTISE_IP is the node's overlay IP: it reaches a pod on the host
// network or through a hostPort, no other. A pod it does not reach is
// refused; one whose address a second peer on its node could share is
// admitted with a warning.
func TestAdvertisedAddressMustReachThePod(t *testing.T) {
	offHost := func(p *corev1.Pod) { p.Spec.HostNetwork = false }
	port := annotate(api.AnnotationPort, "4001")
	declare := func(containerPort, hostPort int32) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.Spec.Containers[0].Ports = append(p.Spec.Containers[0].Ports, corev1.ContainerPort{ContainerPort: containerPort, HostPort: hostPort})
		}
	}
	tests := []struct {
		name         string
		pod          *corev1.Pod
		wantWarnings []string
		wantErr      string
	}{
		{"host network, port declared", pod(port, declare(4001, 4001)), nil, ""},
		{"host network, port not declared", pod(port), []string{"no container declares port 4001 (annotation kubectl-stage.io/port): declare containerPort: 4001 so that the scheduler never puts two peers, and one address, on one node"}, ""},
		{"host network, no port", pod(), []string{"without annotation kubectl-stage.io/port, peers on one node advertise the same address (the node's IP): set it to the peer port and declare that containerPort"}, ""},
		{"a hostPort on the peer port", pod(offHost, port, declare(4001, 4001)), nil, ""},
		{"a hostPort mapped to another container port", pod(offHost, port, declare(7000, 4001)), nil, ""},
		{"another hostPort", pod(offHost, port, declare(4001, 5001)), nil,
			"STAGE_ADVERTISE_IP is the node's overlay IP, which does not reach this pod: set spec.hostNetwork: true, or give a container the hostPort 4001 (annotation kubectl-stage.io/port)"},
		{"the pod network, no port", pod(offHost), nil,
			"STAGE_ADVERTISE_IP is the node's overlay IP, which does not reach this pod: set spec.hostNetwork: true, or set annotation kubectl-stage.io/port to the peer port and give a container that hostPort"},
		{"the user advertises an address of their own", pod(offHost, port, setEnv(corev1.EnvVar{Name: api.EnvAdvertiseIP, ValueFrom: fieldRef("status.podIP")})), nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, d, err := mutateTwice(t, tt.pod)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v\nwant %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(d.Warnings, tt.wantWarnings) {
				t.Errorf("warnings = %q\nwant %q", d.Warnings, tt.wantWarnings)
			}
		})
	}
}

// Seeds are peers their node's address reaches, each address once.
func TestSeedsAreReachableAndDistinct(t *testing.T) {
	v := StaticView{SiteNames: view.SiteNames, PeersByApp: map[string][]Peer{"p2p/gossip": {
		{Name: "a", Site: "tokyo", HostIP: "10.23.0.10", HostNetwork: true, Ready: true},
		{Name: "b", Site: "tokyo", HostIP: "10.23.0.10", HostNetwork: true, Ready: true}, // same node, same address
		{Name: "c", Site: "osaka", HostIP: "10.23.0.11", Ready: true},                    // on the pod network
		{Name: "d", Site: "osaka", HostIP: "10.23.0.12", HostPorts: []int32{4001}, Ready: true},
		{Name: "e", Site: "frankfurt", HostIP: "10.23.0.13", HostPorts: []int32{9999}, Ready: true}, // another port
	}}}
	got, _, err := Mutate(pod(annotate(api.AnnotationPort, "4001"), annotate(api.AnnotationSeeds, "10")), nil, v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if seeds, _ := env(got, api.EnvPeerSeeds); !sameSeeds(seeds.Value, "10.23.0.12:4001", "10.23.0.10:4001") {
		t.Errorf("seeds = %q, want each reachable address once", seeds.Value)
	}
	ipOnly, _, err := Mutate(pod(annotate(api.AnnotationSeeds, "10")), nil, v, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if seeds, _ := env(ipOnly, api.EnvPeerSeeds); seeds.Value != "10.23.0.10" {
		t.Errorf("seeds without a port = %q, want the host-network node once", seeds.Value)
	}
}

// The injected annotation is the webhook's record of what it did: a value
// the user wrote is replaced.
func TestInjectedRecordIsTheWebhooks(t *testing.T) {
	got, _, err := mutateTwice(t, pod(annotate(api.AnnotationInjected, "app=other placement=spread sites=mars seeds=0"), ownedByStatefulSet("gossip-1"),
		annotate(api.AnnotationPlacement, PlacementOnePerSite), annotate(api.AnnotationSeeds, "2")))
	if err != nil {
		t.Fatal(err)
	}
	if record := got.Annotations[api.AnnotationInjected]; record != "app=gossip placement=one-per-site sites=frankfurt,osaka,tokyo site=osaka seeds=2" {
		t.Errorf("record = %q", record)
	}
}
