package webhook_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

const peerPort = 4001

// peerPod is an opted-in peer that is reachable at its advertised address:
// on the host network, declaring the peer port.
func peerPod(ns, name, app string, annotations map[string]string, mods ...func(*corev1.Pod)) *corev1.Pod {
	ann := map[string]string{api.AnnotationPort: fmt.Sprint(peerPort)}
	for k, v := range annotations {
		ann[k] = v
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app, api.LabelInject: api.LabelInjectValue}, Annotations: ann},
		Spec: corev1.PodSpec{
			HostNetwork: true,
			Containers:  []corev1.Container{{Name: "node", Image: "example.invalid/" + app, Ports: []corev1.ContainerPort{{ContainerPort: peerPort}}}},
		},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

// onPort makes the peer port port: peers of two apps on one node need two.
func onPort(port int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Annotations[api.AnnotationPort] = fmt.Sprint(port)
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: port}}
	}
}

func requiredTerms(terms ...corev1.NodeSelectorTerm) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms},
		}}
	}
}

func term(key string, op corev1.NodeSelectorOperator, values ...string) corev1.NodeSelectorTerm {
	return corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: key, Operator: op, Values: values}}}
}

// wantRefused creates pod and asserts the webhook refused it with a message
// containing every one of parts.
func wantRefused(t *testing.T, client kubernetes.Interface, pod *corev1.Pod, parts ...string) {
	t.Helper()
	_, err := client.CoreV1().Pods(pod.Namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err == nil {
		t.Errorf("%s was admitted; want it refused with %q", pod.Name, parts)
		return
	}
	for _, part := range parts {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("%s: error %q does not say %q", pod.Name, err, part)
		}
	}
}

func sitesOf(c *cluster, pods []corev1.Pod) map[string]int {
	perSite := map[string]int{}
	for _, p := range pods {
		perSite[c.site[p.Spec.NodeName]]++
	}
	return perSite
}

func wantPerSite(t *testing.T, got map[string]int, each int) {
	t.Helper()
	for _, s := range sites {
		if got[s] != each {
			t.Errorf("pods per site %v, want exactly %d at each of %v", got, each, sites)
			return
		}
	}
}

// warningCollector records the admission warnings the API server returns,
// as kubectl prints them.
type warningCollector struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

// TestUserSiteAffinityIsANDed: the sites annotation holds whatever node
// affinity and nodeSelector the user wrote (issue #10, item 1).
func TestUserSiteAffinityIsANDed(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	createNamespace(t, c.cp, "affinity", nil)
	tokyoOsaka := map[string]string{api.AnnotationSites: "tokyo,osaka"}

	// An ORed term naming frankfurt would let the pod run at frankfurt.
	wantRefused(t, c.cp.Client, peerPod("affinity", "or-frankfurt", "a", tokyoOsaka, requiredTerms(
		term("disktype", corev1.NodeSelectorOpIn, "ssd"),
		term(api.LabelSite, corev1.NodeSelectorOpIn, "frankfurt"),
	)), "node affinity term 2 requires kubectl-stage.io/site In [frankfurt]", `annotation kubectl-stage.io/sites="tokyo,osaka"`, "remove the site expression")
	wantRefused(t, c.cp.Client, peerPod("affinity", "selector-frankfurt", "a", tokyoOsaka, func(p *corev1.Pod) {
		p.Spec.NodeSelector = map[string]string{api.LabelSite: "frankfurt"}
	}), "nodeSelector kubectl-stage.io/site=frankfurt", `annotation kubectl-stage.io/sites="tokyo,osaka"`)

	// A compatible expression of the user's stays, and the sites are ANDed in.
	created, err := c.cp.Client.CoreV1().Pods("affinity").Create(ctx, peerPod("affinity", "not-tokyo", "a", tokyoOsaka, requiredTerms(
		term(api.LabelSite, corev1.NodeSelectorOpNotIn, "tokyo"),
	)), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := created.Spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms
	want := []corev1.NodeSelectorRequirement{
		{Key: api.LabelSite, Operator: corev1.NodeSelectorOpNotIn, Values: []string{"tokyo"}},
		{Key: api.LabelSite, Operator: corev1.NodeSelectorOpIn, Values: []string{"osaka", "tokyo"}},
	}
	if len(got) != 1 || !slices.EqualFunc(got[0].MatchExpressions, want, func(a, b corev1.NodeSelectorRequirement) bool {
		return a.Key == b.Key && a.Operator == b.Operator && slices.Equal(a.Values, b.Values)
	}) {
		t.Errorf("terms = %+v, want one term %+v", got, want)
	}
	for _, p := range waitRunning(t, c.cp, "affinity", "app=a", 1) {
		if site := c.site[p.Spec.NodeName]; site != "osaka" {
			t.Errorf("%s runs at %s, want osaka (tokyo or osaka, not tokyo)", p.Name, site)
		}
	}
}

// TestUserCannotPinStageSite: STAGE_SITE is the webhook's; a value the user
// wrote is never taken as the pod's site (issue #10, item 2).
func TestUserCannotPinStageSite(t *testing.T) {
	c := startCluster(t)
	createNamespace(t, c.cp, "pin", nil)
	wantRefused(t, c.cp.Client, peerPod("pin", "my-dc", "p", map[string]string{api.AnnotationPlacement: "one-per-site"}, func(p *corev1.Pod) {
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: api.EnvSite, Value: "my-dc"}}
	}), `container "node" sets STAGE_SITE="my-dc"`, "remove STAGE_SITE from the container's env")
}

// TestOnePerSiteBursts: one-per-site is exact when a Deployment or many bare
// pods are created at once, before any of them is scheduled (issue #10,
// item 3).
func TestOnePerSiteBursts(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	createNamespace(t, c.cp, "burst", map[string]string{api.LabelInject: api.LabelInjectValue})

	template := peerPod("burst", "", "dep", map[string]string{api.AnnotationPlacement: "one-per-site"})
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "dep", Namespace: "burst"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(int32(3)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "dep"}},
			Template: corev1.PodTemplateSpec{ObjectMeta: template.ObjectMeta, Spec: template.Spec},
		},
	}
	if _, err := c.cp.Client.AppsV1().Deployments("burst").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitRunning(t, c.cp, "burst", "app=dep", 3)
	wantPerSite(t, sitesOf(c, pods), 1)
	for _, p := range pods {
		// The site is known only at binding: the downward API reads the
		// zone label the API server copied from the node.
		if ref := envRef(p, api.EnvSite); ref != "metadata.labels['topology.kubernetes.io/zone']" {
			t.Errorf("%s: %s from %q, want the zone label", p.Name, api.EnvSite, ref)
		}
		if zone := p.Labels[api.LabelZone]; zone != c.site[p.Spec.NodeName] {
			t.Errorf("%s: zone label %q, want %q", p.Name, zone, c.site[p.Spec.NodeName])
		}
	}
	// A rolling update spreads the new ReplicaSet's pods among themselves
	// (with 3 of 6 nodes free: on a full cluster hostPorts leave a surge
	// pod nowhere to go).
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"revision":"2"}}}}}`)
	if _, err := c.cp.Client.AppsV1().Deployments("burst").Patch(ctx, "dep", types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	var updated []corev1.Pod
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		updated = waitRunning(t, c.cp, "burst", "app=dep", 3)
		return !slices.ContainsFunc(updated, func(p corev1.Pod) bool { return p.Annotations["revision"] != "2" }), nil
	})
	if err != nil {
		t.Fatalf("the rollout never completed: %v", err)
	}
	wantPerSite(t, sitesOf(c, updated), 1)

	if _, err := c.cp.Client.AppsV1().Deployments("burst").UpdateScale(ctx, "dep", &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "dep", Namespace: "burst"}, Spec: autoscalingv1.ScaleSpec{Replicas: 6}}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPerSite(t, sitesOf(c, waitRunning(t, c.cp, "burst", "app=dep", 6)), 2)

	// Bare pods created all at once (on another port: the Deployment's
	// peers hold 4001 on every node).
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i := range errs {
		wg.Go(func() {
			_, errs[i] = c.cp.Client.CoreV1().Pods("burst").Create(ctx, peerPod("burst", fmt.Sprintf("bare-%d", i), "bare", map[string]string{api.AnnotationPlacement: "one-per-site"}, onPort(peerPort+1)), metav1.CreateOptions{})
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	wantPerSite(t, sitesOf(c, waitRunning(t, c.cp, "burst", "app=bare", 3)), 1)
}

// TestAdvertisedAddressReachesThePod: a peer is refused unless the node's
// overlay IP reaches it, warned when peers on one node would advertise the
// same address, and seed lists never repeat an address (issue #10, item 4).
func TestAdvertisedAddressReachesThePod(t *testing.T) {
	ctx := context.Background()
	c := startCluster(t)
	createNamespace(t, c.cp, "addr", nil)

	wantRefused(t, c.cp.Client, peerPod("addr", "pod-network", "x", nil, func(p *corev1.Pod) { p.Spec.HostNetwork = false }),
		"STAGE_ADVERTISE_IP is the node's overlay IP, which does not reach this pod", "set spec.hostNetwork: true, or give a container the hostPort 4001")
	hostPort := peerPod("addr", "host-port", "x", nil, func(p *corev1.Pod) {
		p.Spec.HostNetwork = false
		p.Spec.Containers[0].Ports[0].HostPort = peerPort
	})
	if _, err := c.cp.Client.CoreV1().Pods("addr").Create(ctx, hostPort, metav1.CreateOptions{}); err != nil {
		t.Errorf("a pod with hostPort %d was refused: %v", peerPort, err)
	}

	// Without a port, two peers on one node advertise the same address:
	// admitted with a warning the user sees, and listed once as a seed.
	warnings := &warningCollector{}
	cfg := rest.CopyConfig(c.cp.Config)
	cfg.WarningHandler = warnings
	client := kubernetes.NewForConfigOrDie(cfg)
	noPort := func(name string) *corev1.Pod {
		return peerPod("addr", name, "iponly", nil, func(p *corev1.Pod) {
			delete(p.Annotations, api.AnnotationPort)
			p.Spec.Containers[0].Ports = nil
			p.Spec.NodeSelector = map[string]string{corev1.LabelHostname: "tokyo-1"}
		})
	}
	for _, name := range []string{"iponly-1", "iponly-2"} {
		if _, err := client.CoreV1().Pods("addr").Create(ctx, noPort(name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	wantWarning := "without annotation kubectl-stage.io/port, peers on one node advertise the same address (the node's IP): set it to the peer port and declare that containerPort"
	if got := slices.Compact(slices.Clone(warnings.warnings)); !slices.Equal(got, []string{wantWarning}) {
		t.Errorf("warnings = %q, want [%q]", warnings.warnings, wantWarning)
	}
	waitRunning(t, c.cp, "addr", "app=iponly", 2)
	var seeds string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods("addr").Create(ctx, noPort("iponly-3"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			return false, err
		}
		seeds = envValue(*p, api.EnvPeerSeeds)
		return seeds != "", nil
	})
	if err != nil {
		t.Fatalf("no seeds offered: %v", err)
	}
	if want := c.nodeIPs["tokyo-1"]; seeds != want {
		t.Errorf("%s = %q, want %q once", api.EnvPeerSeeds, seeds, want)
	}
}
