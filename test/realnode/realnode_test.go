// Package realnode proves the whole story on real nodes: three machines at
// three sites (test/machine) run their join bundles exactly as a user would
// (`bash NODE.join.sh`): OpenVPN tunnel to the hub, a real `kubeadm join`
// over the overlay, a real kubelet and containerd; the gossip example runs
// on them from images built without Docker, the peers find each other over
// the tunnels, a rollout replaces them and a node leaves.
package realnode

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/examples/gossip/node"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/secretfile"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/machine"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

const (
	hubOverlay = "10.23.0.1"
	pauseRef   = "ghcr.io/kubectl-stage/pause:v0.1.0"
	gossipV2   = "ghcr.io/kubectl-stage/gossip:v2"
)

type realNode struct {
	name, site, ip, bundle string
	m                      *machine.Machine
}

func TestRealNodes(t *testing.T) {
	started := time.Now()
	netns.RequireRoot(t)
	tools, err := harness.FindTools()
	if err != nil {
		t.Skip(err)
	}
	if err := tools.NodeTools(); err != nil {
		t.Skip(err)
	}
	for _, bin := range []string{"containerd", "runc", "ctr", "openvpn", "nsenter", "unshare", "setsid"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bins := buildBinaries(t, dir)

	cp := harness.StartForTest(t, harness.Options{Scheduler: true, ControllerManager: true, ServingIPs: []net.IP{net.ParseIP(hubOverlay)}})
	stage := func(t *testing.T, cp *harness.ControlPlane, args ...string) string {
		t.Helper()
		return runStage(t, bins.stage, cp, args...)
	}
	if err := cp.KubeadmBootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cp.AdvertiseAt(ctx, hubOverlay+":6443"); err != nil {
		t.Fatal(err)
	}
	stage(t, cp, "init", "--vpn", "openvpn", "--hub-endpoint", netns.HubAddress, "--pod-cidr", harness.PodCIDR, "--service-cidr", harness.ServiceCIDR)
	tp := netns.New(t, 3)
	var nodes []*realNode
	for i := range tp.Sites {
		n := &realNode{name: fmt.Sprintf("node-%d", i+1), site: fmt.Sprintf("site-%d", i+1)}
		n.bundle = filepath.Join(dir, n.name+".join.sh")
		out := stage(t, cp, "join", n.site, "--node", n.name, "-f", n.bundle)
		n.ip = between(out, "with overlay IP ", ";")
		nodes = append(nodes, n)
	}
	hubDir := filepath.Join(dir, "hub")
	stage(t, cp, "hub-config", "--dir", hubDir)
	hub, err := harness.StartDaemon("openvpn-hub", "ip", []string{"netns", "exec", tp.Hub, "openvpn", "--cd", hubDir, "--config", "server.conf"}, filepath.Join(dir, "openvpn-hub.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Stop)
	waitFor(t, ctx, "the hub's overlay address", func() bool {
		out, _ := tp.Run(tp.Hub, "ip", "-o", "address", "show")
		return strings.Contains(out, " "+hubOverlay+"/")
	})
	// The API server (on this host's loopback) at the hub's overlay
	// address: nodes reach it only through their tunnels.
	apiURL, _ := url.Parse(cp.URL())
	forward, err := netns.Forward(tp.Hub, hubOverlay+":6443", apiURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = forward.Close() })

	machine.KeepSysctls(t)
	imports := []string{"pause-v0.1.0.tar", "gossip-v1.tar", "gossip-v2.tar"}
	for i, n := range nodes {
		n.m = machine.New(t, machine.Config{Name: n.name, NetNS: tp.Sites[i], Hosts: map[string]string{n.name: n.ip},
			PodSubnet: fmt.Sprintf("10.244.%d.0/24", i+1), Init: bins.pause, SandboxImage: pauseRef, Dir: filepath.Join(dir, "machines", n.name)})
		if out, err := n.m.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		if err := n.m.StartContainerd(ctx); err != nil {
			t.Fatal(err)
		}
		for _, img := range imports {
			if err := n.m.ImportImage(ctx, filepath.Join(bins.images, img)); err != nil {
				t.Fatal(err)
			}
		}
		// What differs between kubelets sharing one host, as a kubeadm patch.
		patches := n.m.Path("/etc/kubectl-stage/kubeadm-patches")
		if err := os.MkdirAll(patches, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(patches, "kubeletconfiguration+merge.yaml"), []byte("cgroupRoot: "+n.m.CgroupRoot+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if tp.Ping(tp.Sites[0], tp.SiteAddress[tp.Sites[1]]) {
		t.Fatal("the sites reach each other without the VPN: the test proves nothing")
	}

	// Each machine: bash NODE.join.sh, then Ready.
	path := filepath.Dir(tools.Kubeadm) + ":" + os.Getenv("PATH")
	joinSeconds := map[string]float64{}
	for _, n := range nodes {
		begin := time.Now()
		// CI runs cgroup v1, which kubeadm refuses unless told (the kubelet-config allows it).
		cmd := n.m.Command(ctx, []string{"PATH=" + path, "STAGE_KUBEADM_IGNORE_PREFLIGHT=SystemVerification"}, "bash", n.bundle)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash %s.join.sh on %s: %v\n%s\nkubelet log:\n%s", n.name, n.name, err, out, tailFile(n.m.Path("/etc/kubectl-stage/kubelet.log"), 30))
		}
		t.Logf("bash %s.join.sh:\n%s", n.name, out)
		waitNodeReady(t, ctx, cp, n)
		joinSeconds[n.name] = time.Since(begin).Seconds()
	}
	for _, n := range nodes {
		got, err := cp.Client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if ip := internalIP(got); ip != n.ip || got.Labels[api.LabelSite] != n.site {
			t.Errorf("%s registered with InternalIP %s and site %q, want %s and %q", n.name, ip, got.Labels[api.LabelSite], n.ip, n.site)
		}
	}

	stopWebhook := startWebhook(t, ctx, cp, bins.webhook, dir)
	defer stopWebhook()
	if out, err := exec.Command(tools.Kubectl, "--kubeconfig", cp.Kubeconfig, "apply", "-f", filepath.Join(harness.RepoRoot(), "examples", "gossip", "manifests", "gossip.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply gossip: %v\n%s", err, out)
	}
	checkPeers(t, ctx, cp, nodes, bins.gossip, "v1")

	stage(t, cp, "rollout", "-n", "p2p", "sts/gossip", "--image", "gossip="+gossipV2)
	checkPeers(t, ctx, cp, nodes, bins.gossip, "v2")

	for _, n := range nodes {
		t.Logf("%s: bash %s.join.sh to Ready in %.1fs; kubelet %d MiB, containerd %d MiB", n.name, n.name, joinSeconds[n.name],
			n.m.ProcessMemory("kubelet")>>20, n.m.ProcessMemory("containerd")>>20)
	}

	// node-3 leaves: drained, revoked, gone; its bundle stops its kubelet.
	gone := nodes[2]
	stage(t, cp, "leave", gone.name)
	waitFor(t, ctx, gone.name+" removed", func() bool {
		_, err := cp.Client.CoreV1().Nodes().Get(ctx, gone.name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	})
	out, err := gone.m.Command(ctx, []string{"PATH=" + path}, "bash", gone.bundle, "down").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "kubelet (pid") {
		t.Errorf("bash %s.join.sh down: %v\n%s", gone.name, err, out)
	}
	for _, p := range gone.m.Processes() {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p)); strings.TrimSpace(string(comm)) == "kubelet" {
			t.Errorf("the kubelet of %s still runs after down (pid %d)", gone.name, p)
		}
	}
	t.Logf("the whole test took %s", time.Since(started).Round(time.Second))
}

type binaries struct{ stage, pause, webhook, gossip, images string }

// buildBinaries builds the images (make image's program) and the host-side
// binaries: the pause init of machines, the webhook and the gossip client.
func buildBinaries(t *testing.T, dir string) binaries {
	root := harness.RepoRoot()
	b := binaries{stage: harness.BuildStage(t), pause: filepath.Join(dir, "pause"), webhook: filepath.Join(dir, "stage-webhook"), gossip: filepath.Join(dir, "gossip"), images: filepath.Join(dir, "images")}
	for _, build := range [][]string{
		{"run", "./hack/image", "-out", b.images},
		{"build", "-o", b.pause, "./hack/image/pause"},
		{"build", "-o", b.webhook, "./webhook/cmd/stage-webhook"},
		{"build", "-o", b.gossip, "./examples/gossip"},
	} {
		cmd := exec.Command("go", build...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", build, err, out)
		}
	}
	return b
}

func waitNodeReady(t *testing.T, ctx context.Context, cp *harness.ControlPlane, n *realNode) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := cp.Client.CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("%s did not become Ready: %v\nkubelet log:\n%s", n.name, err, tailFile(n.m.Path("/etc/kubectl-stage/kubelet.log"), 40))
	}
}

func internalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// checkPeers waits until a gossip pod of version runs on every node and
// each peer, asked from its own machine, lists the other two alive at their
// overlay addresses.
func checkPeers(t *testing.T, ctx context.Context, cp *harness.ControlPlane, nodes []*realNode, gossip, version string) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(ctx, time.Second, 4*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cp.Client.CoreV1().Pods("p2p").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, nil
		}
		onNode := map[string]corev1.Pod{}
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning && strings.HasSuffix(p.Spec.Containers[0].Image, ":"+version) && p.DeletionTimestamp == nil {
				onNode[p.Spec.NodeName] = p
			}
		}
		last = fmt.Sprintf("%d of %d nodes run a %s peer", len(onNode), len(nodes), version)
		if len(onNode) != len(nodes) {
			return false, nil
		}
		for _, n := range nodes {
			out, err := n.m.Run(ctx, gossip, "peers", n.ip+":7946")
			if err != nil {
				last = fmt.Sprintf("%s: %v %s", n.name, err, out)
				return false, nil
			}
			var view node.View
			if err := json.Unmarshal([]byte(out), &view); err != nil {
				return false, nil
			}
			alive := map[string]bool{}
			for _, m := range view.Members {
				if m.Alive {
					alive[m.Addr] = true
				}
			}
			for _, other := range nodes {
				if !alive[other.ip+":7946"] {
					last = fmt.Sprintf("%s does not see %s at %s:7946: %s", n.name, other.name, other.ip, out)
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("gossip %s peers: %s: %v", version, last, err)
	}
	t.Logf("gossip %s: every peer lists the others at their overlay addresses", version)
}

// startWebhook installs the chart for a webhook served from this host, as
// the demo does, and runs stage-webhook with the chart's certificate.
func startWebhook(t *testing.T, ctx context.Context, cp *harness.ControlPlane, bin, dir string) func() {
	t.Helper()
	port, health := freePort(t), freePort(t)
	cert, key, err := cp.InstallChartForURL(ctx, "https://127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	certDir := filepath.Join(dir, "webhook-tls")
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"tls.crt": cert, "tls.key": key} {
		if err := secretfile.Write(filepath.Join(certDir, name), data); err != nil {
			t.Fatal(err)
		}
	}
	d, err := harness.StartDaemon("stage-webhook", bin, []string{"--kubeconfig=" + cp.Kubeconfig, "--host=127.0.0.1",
		"--port=" + strconv.Itoa(port), "--cert-dir=" + certDir, "--metrics-bind-address=0",
		"--health-probe-bind-address=127.0.0.1:" + strconv.Itoa(health)}, filepath.Join(dir, "stage-webhook.log"))
	if err != nil {
		t.Fatal(err)
	}
	if err := d.WaitHealthy(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", health)); err != nil {
		d.Stop()
		t.Fatal(err)
	}
	return d.Stop
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = ln.Close() }()
	return ln.Addr().(*net.TCPAddr).Port
}

func runStage(t *testing.T, bin string, cp *harness.ControlPlane, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"--kubeconfig", cp.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl stage %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func waitFor(t *testing.T, ctx context.Context, what string, ok func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) { return ok(), nil }); err != nil {
		t.Fatalf("timed out waiting for %s", what)
	}
}

func between(s, start, end string) string {
	_, after, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(after, end)
	return v
}

func tailFile(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
