package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// netAgentSelector selects the chart's node agent pods.
const netAgentSelector = "app.kubernetes.io/component=net-agent"

// checkNetAgent: the chart's node agent (netAgent.enabled) runs as a pod
// from its image on every real node, takes the network conditions over from
// a join bundle's agent, measures every other node, and applies a partition
// on the real tunnel devices; when the pods go, their rules go with them and
// the bundle's agent takes its node's conditions back.
func checkNetAgent(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	first, second, third := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	c.step("%s: STAGE_AGENT=%s bash %s.join.sh agent", first.Name, c.Bin.Agent, first.Name)
	out, err := c.RunBundle(ctx, first, []string{"STAGE_AGENT=" + c.Bin.Agent}, "agent")
	if err != nil || !strings.Contains(out, "ok: node agent started (pid ") {
		t.Fatalf("bash %s.join.sh agent: %v\n%s", first.Name, err, out)
	}
	waitNetStatus(t, ctx, c, first, "the bundle's agent applies", func(st *netcond.Status) bool { return strings.HasPrefix(st.AppliedBy, "process ") })

	if _, err := c.UpgradeChart(ctx, "--set", "netAgent.enabled=true"); err != nil {
		t.Fatal(err)
	}
	pods, err := c.CP.Client.CoreV1().Pods(api.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: netAgentSelector})
	if err != nil {
		t.Fatal(err)
	}
	podOn := map[string]string{}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || !p.Spec.HostNetwork || p.Spec.Containers[0].Image != "ghcr.io/kubectl-stage/kubectl-stage-agent:v0.1.0" {
			t.Errorf("agent pod %s: phase %s, hostNetwork %v, image %s", p.Name, p.Status.Phase, p.Spec.HostNetwork, p.Spec.Containers[0].Image)
		}
		podOn[p.Spec.NodeName] = p.Name
	}
	if len(pods.Items) != len(c.Nodes) || len(podOn) != len(c.Nodes) {
		t.Fatalf("want one agent pod per node, got %v", podOn)
	}
	// Each pod applies on its node and measures every other node.
	for _, n := range c.Nodes {
		want := "pod " + api.SystemNamespace + "/" + podOn[n.Name]
		st := waitNetStatus(t, ctx, c, n, "the agent pod applies and measures", func(st *netcond.Status) bool {
			measured := 0
			for _, p := range st.Peers {
				if p.Sent > 0 && p.Lost < p.Sent {
					measured++
				}
			}
			return st.AppliedBy == want && measured == len(c.Nodes)-1
		})
		t.Logf("%s: applied by %s; measured %+v", n.Name, st.AppliedBy, st.Peers)
	}
	// Each pod serves its figures for Prometheus at its node's overlay
	// address, labelled by site pair only.
	for _, n := range c.Nodes {
		metrics := scrape(t, ctx, "http://"+n.OverlayIP+":9101/metrics")
		for _, other := range c.Nodes {
			if other == n {
				continue
			}
			if want := fmt.Sprintf(`kubectl_stage_net_rtt_p50_seconds{from_site=%q,to_site=%q} `, n.Site, other.Site); !strings.Contains(metrics, want) {
				t.Errorf("%s's agent pod serves no %s...:\n%s", n.Name, want, metrics)
			}
		}
		if strings.Contains(metrics, n.Name) {
			t.Errorf("%s's metrics name nodes (their labels must be site pairs only):\n%s", n.Name, metrics)
		}
	}

	// kubectl stage net says the same, from one point.
	out, err = c.Stage(ctx, "net", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var matrix v1alpha1.NetworkMatrix
	if err := json.Unmarshal([]byte(out), &matrix); err != nil {
		t.Fatalf("net -o json: %v\n%s", err, out)
	}
	for _, a := range matrix.Agents {
		if a.AppliedBy != "pod "+api.SystemNamespace+"/"+podOn[a.Node] {
			t.Errorf("net -o json: %s's conditions applied by %q, want its agent pod %s", a.Node, a.AppliedBy, podOn[a.Node])
		}
	}
	if len(matrix.Agents) != len(c.Nodes) {
		t.Errorf("net -o json lists the agents of %d nodes, want %d: %+v", len(matrix.Agents), len(c.Nodes), matrix.Agents)
	}
	if log := Tail(first.Machine.Path("/etc/kubectl-stage/agent.log"), 20); !strings.Contains(log, "network conditions handed over to the agent pod on this machine") {
		t.Errorf("the bundle's agent on %s does not say it handed over; its log:\n%s", first.Name, log)
	}

	begin := time.Now()
	c.step("kubectl stage net partition %s --from %s", first.Site, second.Site)
	if _, err := c.Stage(ctx, "net", "partition", first.Site, "--from", second.Site); err != nil {
		t.Fatal(err)
	}
	version := conditionsVersion(t, ctx, c)
	for _, n := range c.Nodes {
		waitNetStatus(t, ctx, c, n, "the partition is applied", func(st *netcond.Status) bool { return st.ConditionsVersion == version && st.Error == "" })
	}
	t.Logf("net partition -> rules in place on the 3 real nodes, applied by the agent pods: %s", time.Since(begin).Round(time.Millisecond))
	checkReach(t, ctx, c, map[[2]*Node]bool{{first, second}: false, {second, first}: false, {first, third}: true, {second, third}: true})

	// The pods stop: each removes its rules; the bundle's agent on the first
	// node takes the partition back, from its own side.
	if _, err := c.UpgradeChart(ctx, "--set", "netAgent.enabled=false"); err != nil {
		t.Fatal(err)
	}
	if err := poll(ctx, time.Minute, "the agent pods to go", func() bool {
		pods, err := c.CP.Client.CoreV1().Pods(api.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: netAgentSelector})
		return err == nil && len(pods.Items) == 0
	}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{second, third} {
		if out, err := n.Machine.Run(ctx, "nft", "list", "table", "inet", "kubectl-stage-net"); err == nil {
			t.Errorf("%s keeps the stopped agent pod's nftables table:\n%s", n.Name, out)
		}
		if out, _ := n.Machine.Run(ctx, "tc", "qdisc", "show", "dev", "stage0"); strings.Contains(out, "5354:") {
			t.Errorf("%s keeps the stopped agent pod's qdisc:\n%s", n.Name, out)
		}
	}
	waitNetStatus(t, ctx, c, first, "the bundle's agent takes the conditions back", func(st *netcond.Status) bool {
		return strings.HasPrefix(st.AppliedBy, "process ") && st.ConditionsVersion == version && st.Error == ""
	})
	checkReach(t, ctx, c, map[[2]*Node]bool{{first, second}: false, {second, first}: false, {first, third}: true})

	c.step("kubectl stage net reset")
	if _, err := c.Stage(ctx, "net", "reset"); err != nil {
		t.Fatal(err)
	}
	waitNetStatus(t, ctx, c, first, "the conditions are reset", func(st *netcond.Status) bool { return st.ConditionsVersion == "" && len(st.Pairs) == 0 })
	checkReach(t, ctx, c, map[[2]*Node]bool{{first, second}: true, {second, first}: true})
}

// waitNetStatus waits until n's agent publishes a status for which ok holds.
func waitNetStatus(t *testing.T, ctx context.Context, c *Cluster, n *Node, what string, ok func(*netcond.Status) bool) *netcond.Status {
	t.Helper()
	st := &netcond.Status{}
	err := poll(ctx, 90*time.Second, what, func() bool {
		node, err := c.CP.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		published, err := site.NetStatusOf(node)
		if err != nil || published == nil {
			return false
		}
		st = published
		return ok(st)
	})
	if err != nil {
		t.Fatalf("%s: %v; its status: %+v", n.Name, err, st)
	}
	return st
}

// conditionsVersion is the stored conditions' resourceVersion.
func conditionsVersion(t *testing.T, ctx context.Context, c *Cluster) string {
	t.Helper()
	cm, err := c.CP.Client.CoreV1().ConfigMaps(api.SystemNamespace).Get(ctx, netcond.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return cm.ResourceVersion
}

// checkReach pings over the overlay from the first node of each pair to
// the second, and to the hub, and compares with want. Every node stays
// Ready: its kubelet reaches the API server through the hub.
func checkReach(t *testing.T, ctx context.Context, c *Cluster, want map[[2]*Node]bool) {
	t.Helper()
	for pair, reach := range want {
		from, to := pair[0], pair[1]
		if got := pings(ctx, from, to.OverlayIP); got != reach {
			t.Errorf("%s reaches %s over the overlay: %v, want %v", from.Name, to.Name, got, reach)
		}
		if !pings(ctx, from, HubOverlay) {
			t.Errorf("%s does not reach the hub (%s)", from.Name, HubOverlay)
		}
	}
	for _, n := range c.Nodes {
		if got, err := c.CP.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{}); err != nil || !Ready(got) {
			t.Errorf("%s is not Ready: %v", n.Name, err)
		}
	}
}

// pings says whether any of three pings from n's machine to ip is answered.
func pings(ctx context.Context, n *Node, ip string) bool {
	_, err := n.Machine.Run(ctx, "ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", ip)
	return err == nil
}

// scrape GETs a metrics page from this host (which routes the overlay
// through the hub, as the control plane does).
func scrape(t *testing.T, ctx context.Context, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v\n%s", url, resp.Status, err, body)
	}
	return string(body)
}
