package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

// TestRealNodes is the whole story on real nodes, at three sites, with the
// faults a user meets on the way; each step is asserted on the objects in
// the API server and on the processes and network of the machines.
func TestRealNodes(t *testing.T) {
	started := time.Now()
	if ok, why := Available(); !ok {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := Build(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Start(ctx, Config{Sites: []string{"tokyo", "osaka", "frankfurt"}, Dir: dir, Bin: bin, Progress: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the cluster when the test failed:\n%s", c.Diagnose(context.Background()))
		}
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
		checkNothingLeft(t, c)
	})
	first, last := c.Nodes[0], c.Nodes[2]

	t.Run("tunnel down at join", func(t *testing.T) {
		out, err := c.RunBundle(ctx, last, nil, "join")
		want := "FAILED: overlay not reachable: the tunnel is not set up on this machine (/etc/kubectl-stage/openvpn.conf is missing): bring it up with: bash " + last.Bundle + " vpn"
		if err == nil || !strings.Contains(out, want) {
			t.Errorf("bash %s.join.sh join without a tunnel: %v\n%s\nwant the line %q", last.Name, err, out, want)
		}
		assertNotJoined(t, last)
	})

	t.Run("expired token", func(t *testing.T) {
		expired := &Node{Name: "expired-1", Site: last.Site, Bundle: filepath.Join(dir, "bundles", "expired-1.join.sh"), Machine: last.Machine}
		if _, err := c.Stage(ctx, "join", expired.Site, "--node", expired.Name, "--token-ttl", "1s", "-f", expired.Bundle); err != nil {
			t.Fatal(err)
		}
		// The bundle compares its expiry with the machine's clock, to the second.
		script, err := os.ReadFile(expired.Bundle)
		if err != nil {
			t.Fatal(err)
		}
		_, after, _ := strings.Cut(string(script), "\nTOKEN_EXPIRES='")
		expiry, err := time.Parse(time.RFC3339, strings.SplitN(after, "'", 2)[0])
		if err != nil {
			t.Fatalf("the bundle's TOKEN_EXPIRES: %v", err)
		}
		time.Sleep(time.Until(expiry.Add(time.Second)))
		out, err := c.RunBundle(ctx, expired, nil)
		if err == nil || !strings.Contains(out, "FAILED: bootstrap token ") || !strings.Contains(out, "expired at ") ||
			!strings.Contains(out, "issue a new bundle with: kubectl stage leave expired-1 && kubectl stage join "+last.Site+" --node expired-1") {
			t.Errorf("bash expired-1.join.sh with an expired token: %v\n%s", err, out)
		}
		assertNotJoined(t, last)
		if _, err := c.Stage(ctx, "leave", expired.Name); err != nil {
			t.Fatal(err)
		}
	})

	if err := c.JoinAll(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.Nodes {
		got, err := c.CP.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ip := InternalIP(got); ip != n.OverlayIP || got.Labels[api.LabelSite] != n.Site || !Ready(got) {
			t.Errorf("%s registered with InternalIP %s, site %q, Ready %v; want %s, %q, true", n.Name, ip, got.Labels[api.LabelSite], Ready(got), n.OverlayIP, n.Site)
		}
	}

	t.Run("bundle twice", func(t *testing.T) {
		kubelet, openvpn := first.Machine.PIDsOf("kubelet"), first.Machine.PIDsOf("openvpn")
		out, err := c.RunBundle(ctx, first, []string{"STAGE_KUBEADM_IGNORE_PREFLIGHT=SystemVerification"})
		if err != nil || !strings.Contains(out, "ok: this machine already joined (/etc/kubernetes/kubelet.conf exists; kubeadm reset -f undoes it)") ||
			!strings.Contains(out, "ok: the kubelet already runs (pid ") {
			t.Errorf("bash %s.join.sh again: %v\n%s", first.Name, err, out)
		}
		if now := first.Machine.PIDsOf("kubelet"); !slices.Equal(now, kubelet) || !slices.Equal(first.Machine.PIDsOf("openvpn"), openvpn) {
			t.Errorf("running the bundle again replaced daemons: kubelet %v -> %v, openvpn %v -> %v", kubelet, now, openvpn, first.Machine.PIDsOf("openvpn"))
		}
	})

	// The chart for real: the webhook as pods from its image on the nodes,
	// called by the API server at its Service's endpoints over the overlay.
	if _, err := c.InstallChart(ctx); err != nil {
		t.Fatal(err)
	}
	checkWebhookPods(t, ctx, c)
	checkNetAgent(t, ctx, c)

	c.step("kubectl apply -f examples/gossip/manifests/gossip.yaml")
	if _, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(harness.RepoRoot(), "examples", "gossip", "manifests", "gossip.yaml")); err != nil {
		t.Fatal(err)
	}
	checkPeers(t, ctx, c, "v1")
	checkLogs(t, ctx, c)

	c.step("kubectl stage rollout -n %s sts/gossip --image gossip=%s", AppNamespace, GossipV2)
	if _, err := c.Stage(ctx, "rollout", "-n", AppNamespace, "sts/gossip", "--image", "gossip="+GossipV2, "--min-ready", "1s"); err != nil {
		t.Fatal(err)
	}
	checkPeers(t, ctx, c, "v2")
	checkGraph(t, ctx, c)
	checkCollect(t, ctx, c, filepath.Join(dir, "record"))

	for _, n := range c.Nodes {
		t.Logf("%s: bash %s.join.sh to Ready in %.1fs; kubelet %d MiB, containerd %d MiB", n.Name, n.Name, n.JoinTime.Seconds(),
			n.Machine.ProcessMemory("kubelet")>>20, n.Machine.ProcessMemory("containerd")>>20)
	}

	// The last node leaves: drained, revoked, gone. Once the hub rereads its
	// configuration the tunnel is cut, and the bundle's check says why.
	c.step("kubectl stage leave %s; kubectl stage hub-config", last.Name)
	if _, err := c.Stage(ctx, "leave", last.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Stage(ctx, "hub-config", "--dir", filepath.Join(dir, "hub")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CP.Client.CoreV1().Nodes().Get(ctx, last.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("%s is still a node after leave: %v", last.Name, err)
	}
	var out string
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		out, err = c.RunBundle(ctx, last, []string{"STAGE_WAIT=2"}, "check")
		return err != nil && strings.Contains(out, "FAILED: overlay not reachable: the hub "+netns.HubAddress+":1194"), nil
	})
	if err != nil || !strings.Contains(out, "the hub "+netns.HubAddress+":1194 answers but did not accept this node: its credentials were revoked (kubectl stage leave)") {
		t.Errorf("bash %s.join.sh check after leave does not say the credentials were revoked: %v\n%s\nopenvpn.log:\n%s", last.Name, err, out, Tail(last.Machine.Path("/etc/kubectl-stage/openvpn.log"), 15))
	}
	c.step("bash %s.join.sh check:\n%s", last.Name, out)
	if _, err := last.Machine.Run(ctx, "timeout", "3", "bash", "-c", "exec 3<>/dev/tcp/"+HubOverlay+"/"+APIServerPort); err == nil {
		t.Errorf("%s still reaches the API server at %s:%s after leave", last.Name, HubOverlay, APIServerPort)
	}
	out, err = c.RunBundle(ctx, last, nil, "down", "--purge")
	if err != nil || !strings.Contains(out, "ok: kubelet (pid") {
		t.Errorf("bash %s.join.sh down --purge: %v\n%s", last.Name, err, out)
	}
	if pids := last.Machine.PIDsOf("kubelet"); len(pids) > 0 {
		t.Errorf("the kubelet of %s still runs after down (pids %v)", last.Name, pids)
	}
	for _, f := range []string{"kubelet.log", "kubelet.pid", "kubeadm-join.log", "openvpn.conf", "openvpn.log"} {
		if _, err := os.Stat(last.Machine.Path("/etc/kubectl-stage/" + f)); !os.IsNotExist(err) {
			t.Errorf("down --purge left /etc/kubectl-stage/%s on %s", f, last.Name)
		}
	}
	t.Logf("the whole test took %s", time.Since(started).Round(time.Second))
}

// checkGraph: kubectl stage graph reads every peer's view through the API
// server's pod proxy, over the overlay, and finds one component in which
// each peer knows the other two, both at other sites.
func checkGraph(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	c.step("kubectl stage graph gossip -n %s", AppNamespace)
	var g v1alpha1.PeerGraph
	var out string
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var err error
		if out, err = c.Stage(ctx, "graph", "gossip", "-n", AppNamespace, "-o", "json"); err != nil {
			return false, nil
		}
		g = v1alpha1.PeerGraph{}
		if err := json.Unmarshal([]byte(out), &g); err != nil {
			return false, err
		}
		want := v1alpha1.GraphSummary{Peers: 3, Answered: 3, Components: 1, Links: 6, CrossSiteLinks: 6, CrossSitePercent: 100}
		return reflect.DeepEqual(g.Summary, want), nil
	})
	if err != nil {
		t.Fatalf("kubectl stage graph never showed 3 peers that all know each other across sites: %v\n%s", err, out)
	}
	table, err := c.Stage(ctx, "graph", "gossip", "-n", AppNamespace)
	if err != nil {
		t.Fatal(err)
	}
	c.step("%s", table)
}

// checkCollect: kubectl stage collect records every peer's log from the
// real kubelets, and the graph, with nothing left out.
func checkCollect(t *testing.T, ctx context.Context, c *Cluster, record string) {
	t.Helper()
	c.step("kubectl stage collect gossip -n %s -o %s", AppNamespace, record)
	out, err := c.Stage(ctx, "collect", "gossip", "-n", AppNamespace, "-o", record)
	if err != nil || !strings.HasSuffix(out, "(0 not collected: see manifest.yaml)\n") {
		t.Fatalf("kubectl stage collect: %v\n%s", err, out)
	}
	for i := range c.Nodes {
		log, err := os.ReadFile(filepath.Join(record, "app", "logs", fmt.Sprintf("gossip-%d", i), "gossip.log"))
		if err != nil || !strings.Contains(string(log), fmt.Sprintf("msg=serving name=gossip-%d", i)) {
			t.Errorf("the record's log of gossip-%d: %v\n%s", i, err, log)
		}
	}
	graph, err := os.ReadFile(filepath.Join(record, "app", "graph.yaml"))
	if err != nil || !strings.Contains(string(graph), "components: 1\n") {
		t.Errorf("the record's graph: %v\n%s", err, graph)
	}
}

// assertNotJoined checks that nothing of a join is on n's machine: no
// kubelet credentials, no kubelet, no tunnel.
func assertNotJoined(t *testing.T, n *Node) {
	t.Helper()
	for _, f := range []string{"/etc/kubernetes/kubelet.conf", "/etc/kubernetes/bootstrap-kubelet.conf", "/etc/kubectl-stage/openvpn.conf", "/etc/kubectl-stage/kubeadm-join.yaml"} {
		if _, err := os.Stat(n.Machine.Path(f)); !os.IsNotExist(err) {
			t.Errorf("%s is on %s after the failed join", f, n.Name)
		}
	}
	for _, daemon := range []string{"kubelet", "openvpn"} {
		if pids := n.Machine.PIDsOf(daemon); len(pids) > 0 {
			t.Errorf("%s runs on %s after the failed join (pids %v)", daemon, n.Name, pids)
		}
	}
}

// checkWebhookPods: the chart's webhook runs as ready pods from the chart's
// image on two nodes, on their network, and its Service's endpoints are
// those nodes' overlay IPs.
func checkWebhookPods(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	pods, err := c.CP.Client.CoreV1().Pods(api.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=kubectl-stage"})
	if err != nil {
		t.Fatal(err)
	}
	var podIPs []string
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || !p.Spec.HostNetwork || p.Spec.Containers[0].Image != "ghcr.io/kubectl-stage/stage-webhook:v0.1.0" {
			t.Errorf("webhook pod %s: phase %s, hostNetwork %v, image %s", p.Name, p.Status.Phase, p.Spec.HostNetwork, p.Spec.Containers[0].Image)
		}
		podIPs = append(podIPs, p.Status.PodIP)
	}
	var nodeIPs []string
	for _, n := range c.Nodes {
		if slices.Contains(podIPs, n.OverlayIP) {
			nodeIPs = append(nodeIPs, n.OverlayIP)
		}
	}
	if len(pods.Items) != 2 || len(nodeIPs) != 2 {
		t.Fatalf("want 2 webhook pods on 2 nodes at their overlay IPs, got pod IPs %v", podIPs)
	}
	slices.Sort(podIPs)
	slicesList, err := c.CP.Client.DiscoveryV1().EndpointSlices(api.SystemNamespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + harness.ChartRelease + "-kubectl-stage-webhook"})
	if err != nil {
		t.Fatal(err)
	}
	var endpoints []string
	for _, s := range slicesList.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready != nil && *e.Conditions.Ready {
				endpoints = append(endpoints, e.Addresses...)
			}
		}
	}
	slices.Sort(endpoints)
	if !slices.Equal(endpoints, podIPs) {
		t.Errorf("the webhook Service's ready endpoints are %v, want the pods' overlay IPs %v", endpoints, podIPs)
	}
	t.Logf("the webhook runs as pods at %v", podIPs)
}

// checkPeers waits until a gossip pod of version runs on every node with
// the environment the webhook injected, and each peer, asked from its own
// machine over the tunnel, lists the others alive at their overlay
// addresses.
func checkPeers(t *testing.T, ctx context.Context, c *Cluster, version string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := c.CP.Client.CoreV1().Pods(AppNamespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		onNode := map[string]corev1.Pod{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && strings.HasSuffix(p.Spec.Containers[0].Image, ":"+version) && p.DeletionTimestamp == nil {
				onNode[p.Spec.NodeName] = p
			}
		}
		last = fmt.Sprintf("%d of %d nodes run a %s peer", len(onNode), len(c.Nodes), version)
		return len(onNode) == len(c.Nodes), nil
	})
	if err != nil {
		t.Fatalf("gossip %s: %v (%s)", version, err, last)
	}
	for _, n := range c.Nodes {
		got, err := c.CP.Client.CoreV1().Pods(AppNamespace).List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + n.Name})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range got.Items {
			env := map[string]string{}
			for _, e := range p.Spec.Containers[0].Env {
				env[e.Name] = e.Value
			}
			// The advertise address is the node's IP (the kubelet resolves
			// the variable), and the node's IP is its overlay IP.
			wantAddr := "$(" + api.EnvAdvertiseIP + "):" + gossipPort
			if env[api.EnvSite] != n.Site || env[api.EnvAdvertiseAddr] != wantAddr || p.Status.HostIP != n.OverlayIP {
				t.Errorf("the %s peer on %s: %s=%q, %s=%q, host IP %s; want %q, %q, %s", version, n.Name, api.EnvSite, env[api.EnvSite],
					api.EnvAdvertiseAddr, env[api.EnvAdvertiseAddr], p.Status.HostIP, n.Site, wantAddr, n.OverlayIP)
			}
		}
	}
	if _, err := c.WaitViews(ctx, 2*time.Minute); err != nil {
		t.Fatalf("gossip %s: %v", version, err)
	}
	t.Logf("gossip %s: every peer lists the others at their overlay addresses", version)
}

// checkLogs reads each peer's log through the API server, which fetches it
// from the kubelet over the overlay, as `kubectl logs` does.
func checkLogs(t *testing.T, ctx context.Context, c *Cluster) {
	t.Helper()
	pods, err := c.CP.Client.CoreV1().Pods(AppNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		log, err := c.Kubectl(ctx, "logs", "-n", AppNamespace, p.Name)
		want := "advertise=" + p.Status.HostIP + ":" + gossipPort
		if err != nil || !strings.Contains(log, "msg=serving name="+p.Name) || !strings.Contains(log, want) {
			t.Errorf("kubectl logs %s: %v\n%s\nwant its serving line with %s", p.Name, err, log, want)
		}
	}
}

// checkNothingLeft: after Stop, no namespace, route or link of the cluster
// remains on this host (machine.Destroy already checked processes, cgroups
// and mounts).
func checkNothingLeft(t *testing.T, c *Cluster) {
	t.Helper()
	if out, _ := exec.Command("ip", "route", "show", overlayCIDR).Output(); strings.TrimSpace(string(out)) != "" {
		t.Errorf("the route to the overlay is left on this host: %s", out)
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, ns := range append([]string{c.Topology.Hub}, c.Topology.Sites...) {
		if strings.Contains(string(out), ns) {
			t.Errorf("network namespace %s is left", ns)
		}
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
