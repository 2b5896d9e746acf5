// Package realnode runs kubectl-stage's whole story on real nodes on one
// host: a control plane set up as kubeadm would, an OpenVPN hub, and one
// machine per site (test/machine) that runs its join bundle exactly as a
// user would (`bash NODE.join.sh`): the tunnel to the hub, a real `kubeadm
// join` over the overlay, a real kubelet and containerd running images built
// without Docker. Its test proves each step; `make demo` plays it as root.
package realnode

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/examples/gossip/node"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/machine"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

const (
	// HubOverlay is the hub's overlay address, where nodes reach the API server.
	HubOverlay = "10.23.0.1"
	// APIServerPort is the API server's port at HubOverlay, as kubeadm's.
	APIServerPort = "6443"
	overlayCIDR   = "10.23.0.0/16"
	pauseRef      = "ghcr.io/kubectl-stage/pause:v0.1.0"
	// GossipV2 is the gossip example's second version, for rollouts.
	GossipV2   = "ghcr.io/kubectl-stage/gossip:v2"
	gossipPort = "7946"
	// AppNamespace is where the gossip example runs.
	AppNamespace = "p2p"
)

// Available says whether real nodes can run here, and if not, why.
func Available() (bool, string) {
	if ok, why := netns.Available(); !ok {
		return false, why
	}
	tools, err := harness.FindTools()
	if err != nil {
		return false, err.Error()
	}
	if err := tools.NodeTools(); err != nil {
		return false, err.Error()
	}
	for _, bin := range []string{"containerd", "runc", "ctr", "openvpn", "nsenter", "unshare", "setsid", "nft"} {
		if _, err := exec.LookPath(bin); err != nil {
			return false, bin + " is not installed: run hack/install-deps.sh"
		}
	}
	return true, ""
}

// Binaries are the programs and images a real-node cluster runs.
type Binaries struct {
	// Stage is the kubectl-stage plugin.
	Stage string
	// Pause is the machines' init.
	Pause string
	// Gossip is the gossip example, used as a client of its peers.
	Gossip string
	// Images holds make image's OCI tarballs.
	Images string
	// Agent is the node agent the join bundle starts (STAGE_AGENT).
	Agent string
}

// Build builds the binaries and images into dir (the stage binary is
// KUBECTL_STAGE_BIN when set, an older build to show a test fails on it).
func Build(ctx context.Context, dir string) (Binaries, error) {
	b := Binaries{Stage: os.Getenv("KUBECTL_STAGE_BIN"), Pause: filepath.Join(dir, "pause"), Gossip: filepath.Join(dir, "gossip"), Images: filepath.Join(dir, "images"),
		Agent: filepath.Join(dir, "kubectl-stage-agent")}
	builds := [][]string{
		{"run", "./hack/image", "-out", b.Images},
		{"build", "-o", b.Pause, "./hack/image/pause"},
		{"build", "-o", b.Gossip, "./examples/gossip"},
		{"build", "-o", b.Agent, "./cmd/kubectl-stage-agent"},
	}
	if b.Stage == "" {
		b.Stage = filepath.Join(dir, "kubectl-stage")
		builds = append(builds, []string{"build", "-o", b.Stage, "./cmd/kubectl-stage"})
	}
	for _, args := range builds {
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = harness.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return b, fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return b, nil
}

// Config describes a real-node cluster.
type Config struct {
	// Sites get one node each, named SITE-1.
	Sites []string
	// Dir holds the control plane, bundles, hub configuration, machines and logs.
	Dir string
	Bin Binaries
	// Progress receives a line per step (nil: none).
	Progress io.Writer
}

// Node is a real node at a site.
type Node struct {
	Name, Site, OverlayIP, Bundle string
	Machine                       *machine.Machine
	// JoinTime is from `bash NODE.join.sh` to the node being Ready.
	JoinTime time.Duration
}

// Cluster is a running real-node cluster.
type Cluster struct {
	Config
	CP       *harness.ControlPlane
	Topology *netns.Topology
	Nodes    []*Node
	// Path is PATH for commands on the machines: kubeadm and the kubelet first.
	Path string
	// undo runs in reverse order on Stop.
	undo    []func() error
	started time.Time
}

// Start brings up the control plane, the hub and a machine per site, and
// enrolls a node per site; Join then runs each node's bundle on its
// machine. On error what was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Cluster, err error) {
	c := &Cluster{Config: cfg, started: time.Now()}
	defer func() {
		if err != nil {
			err = errors.Join(err, c.Stop())
		}
	}()
	unlock, err := c.lockHost(ctx)
	if err != nil {
		return c, err
	}
	c.undo = append(c.undo, unlock)
	c.step("control plane (etcd, kube-apiserver, scheduler, controller-manager) set up as kubeadm would, its certificate valid for %s", HubOverlay)
	// Endpoint routing: the API server calls webhooks at their Service's
	// endpoints (here the nodes' overlay IPs), as it would through kube-proxy.
	c.CP, err = harness.Start(ctx, harness.Options{Scheduler: true, ControllerManager: true,
		ServingIPs: []net.IP{net.ParseIP(HubOverlay)}, APIServerArgs: []string{"--enable-aggregator-routing=true"}})
	if err != nil {
		return c, err
	}
	c.undo = append(c.undo, func() error { c.CP.Stop(); return nil })
	c.Path = filepath.Dir(c.CP.Tools.Kubeadm) + ":" + os.Getenv("PATH")
	if err := c.CP.KubeadmBootstrap(ctx); err != nil {
		return c, err
	}
	if err := c.CP.AdvertiseAt(ctx, HubOverlay+":"+APIServerPort); err != nil {
		return c, err
	}
	if _, err := c.Stage(ctx, "init", "--vpn", "openvpn", "--hub-endpoint", netns.HubAddress, "--pod-cidr", harness.PodCIDR, "--service-cidr", harness.ServiceCIDR); err != nil {
		return c, err
	}
	c.Topology, err = netns.Create(len(cfg.Sites))
	if c.Topology != nil {
		c.undo = append(c.undo, func() error { c.Topology.Destroy(); return nil })
	}
	if err != nil {
		return c, err
	}
	for _, site := range cfg.Sites {
		n := &Node{Name: site + "-1", Site: site}
		n.Bundle = filepath.Join(cfg.Dir, "bundles", n.Name+".join.sh")
		if err := os.MkdirAll(filepath.Dir(n.Bundle), 0o700); err != nil {
			return c, err
		}
		c.step("kubectl stage join %s --node %s -f %s", site, n.Name, n.Bundle)
		if _, err := c.Stage(ctx, "join", site, "--node", n.Name, "-f", n.Bundle); err != nil {
			return c, err
		}
		if n.OverlayIP, err = c.Stage(ctx, "status", "-o", `jsonpath={.items[?(@.metadata.name=="`+n.Name+`")].spec.overlayIP}`); err != nil {
			return c, err
		}
		c.Nodes = append(c.Nodes, n)
	}
	if err := c.startHub(ctx); err != nil {
		return c, err
	}
	restore, err := machine.SaveSysctls()
	if err != nil {
		return c, err
	}
	c.undo = append(c.undo, restore)
	for i, n := range c.Nodes {
		if err := c.startMachine(ctx, n, c.Topology.Sites[i], i); err != nil {
			return c, err
		}
	}
	if len(c.Nodes) > 1 && c.Topology.Ping(c.Topology.Sites[0], c.Topology.SiteAddress[c.Topology.Sites[1]]) {
		return c, errors.New("the sites reach each other without the VPN: the overlay would prove nothing")
	}
	return c, nil
}

// JoinAll joins every node, one after the other.
func (c *Cluster) JoinAll(ctx context.Context) error {
	for _, n := range c.Nodes {
		if err := c.Join(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// hostLock is held by the one real-node cluster a host runs at a time:
// clusters share the overlay's route on this host and name their machines'
// cgroups after their nodes (go test runs packages in parallel).
var hostLock = filepath.Join(os.TempDir(), "kubectl-stage-realnode.lock")

// lockHost waits until no other real-node cluster runs on this host.
func (c *Cluster) lockHost(ctx context.Context) (unlock func() error, err error) {
	f, err := os.OpenFile(hostLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	for said := false; ; said = true {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f.Close, nil // closing the file releases the lock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", hostLock, err)
		}
		if !said {
			c.step("waiting for the other real-node cluster on this host to stop (%s)", hostLock)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("waiting for the other real-node cluster on this host (%s): %w", hostLock, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// startHub runs the OpenVPN hub from `kubectl stage hub-config` and puts the
// API server (on this host's loopback) at the hub's overlay address, with
// the overlay routed from this host through the hub: the control plane
// reaches the kubelets and the webhook pods over the overlay, as at a real hub.
func (c *Cluster) startHub(ctx context.Context) error {
	hubDir := filepath.Join(c.Dir, "hub")
	c.step("kubectl stage hub-config --dir %s; openvpn --config server.conf in the hub's namespace", hubDir)
	if _, err := c.Stage(ctx, "hub-config", "--dir", hubDir); err != nil {
		return err
	}
	hub, err := harness.StartDaemon("openvpn-hub", "ip", []string{"netns", "exec", c.Topology.Hub, "openvpn", "--cd", hubDir, "--config", "server.conf"}, filepath.Join(c.Dir, "openvpn-hub.log"))
	if err != nil {
		return err
	}
	c.undo = append(c.undo, func() error { hub.Stop(); return nil })
	if err := poll(ctx, time.Minute, "the hub's overlay address", func() bool {
		out, _ := c.Topology.Run(c.Topology.Hub, "ip", "-o", "address", "show")
		return strings.Contains(out, " "+HubOverlay+"/")
	}); err != nil {
		return err
	}
	apiURL, err := url.Parse(c.CP.URL())
	if err != nil {
		return err
	}
	forward, err := netns.Forward(c.Topology.Hub, HubOverlay+":"+APIServerPort, apiURL.Host)
	if err != nil {
		return err
	}
	c.undo = append(c.undo, forward.Close)
	return c.Topology.RouteFromHost(overlayCIDR)
}

// startMachine makes n's machine in the site's namespace: its containerd
// with the images imported, and the kubeadm patch holding what differs
// between kubelets sharing one host (their cgroup root).
func (c *Cluster) startMachine(ctx context.Context, n *Node, netNS string, index int) error {
	c.step("machine %s at %s: own network (only the tunnel leads out), mount, UTS and PID namespaces, containerd, images", n.Name, n.Site)
	m, err := machine.Start(machine.Config{Name: n.Name, NetNS: netNS, Hosts: map[string]string{n.Name: n.OverlayIP},
		PodSubnet: fmt.Sprintf("10.244.%d.0/24", index+1), Init: c.Bin.Pause, SandboxImage: pauseRef, Dir: filepath.Join(c.Dir, "machines", n.Name)})
	if m != nil {
		c.undo = append(c.undo, m.Destroy)
	}
	if err != nil {
		return err
	}
	n.Machine = m
	if out, err := m.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return fmt.Errorf("%s: sysctl: %v: %s", n.Name, err, out)
	}
	if err := m.StartContainerd(ctx); err != nil {
		return err
	}
	images, err := filepath.Glob(filepath.Join(c.Bin.Images, "*.tar"))
	if err != nil {
		return err
	}
	for _, img := range images {
		if err := m.ImportImage(ctx, img); err != nil {
			return err
		}
	}
	patches := m.Path("/etc/kubectl-stage/kubeadm-patches")
	if err := os.MkdirAll(patches, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(patches, "kubeletconfiguration+merge.yaml"), []byte("cgroupRoot: "+m.CgroupRoot+"\n"), 0o600)
}

// Join runs `bash NODE.join.sh` on n's machine and waits for n to be Ready.
func (c *Cluster) Join(ctx context.Context, n *Node) error {
	c.step("%s: bash %s.join.sh", n.Name, n.Name)
	begin := time.Now()
	// This host runs cgroup v1, which kubeadm's preflight refuses unless
	// told; the kubelet-config allows it (failCgroupV1: false).
	out, err := c.RunBundle(ctx, n, []string{"STAGE_KUBEADM_IGNORE_PREFLIGHT=SystemVerification"})
	if err != nil {
		return fmt.Errorf("bash %s.join.sh on %s: %v\n%s\nkubelet log:\n%s", n.Name, n.Name, err, out, Tail(n.Machine.Path("/etc/kubectl-stage/kubelet.log"), 30))
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := c.CP.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		return err == nil && Ready(got), nil
	}); err != nil {
		return fmt.Errorf("%s did not become Ready: %w\nkubelet log:\n%s", n.Name, err, Tail(n.Machine.Path("/etc/kubectl-stage/kubelet.log"), 40))
	}
	n.JoinTime = time.Since(begin)
	c.step("%s Ready %.1fs after bash %s.join.sh", n.Name, n.JoinTime.Seconds(), n.Name)
	return nil
}

// RunBundle runs `bash NODE.join.sh ARGS` on n's machine with env added.
func (c *Cluster) RunBundle(ctx context.Context, n *Node, env []string, args ...string) (string, error) {
	out, err := n.Machine.Command(ctx, append([]string{"PATH=" + c.Path}, env...), "bash", append([]string{n.Bundle}, args...)...).CombinedOutput()
	return string(out), err
}

// InstallChart installs the Helm chart for real (`helm install --wait`): the
// webhook runs as pods from its image on the nodes, on their network, and
// talks to the API server at the hub's overlay address, since the sites run
// no kube-proxy.
func (c *Cluster) InstallChart(ctx context.Context, set ...string) (string, error) {
	args := []string{"install", harness.ChartRelease, filepath.Join(harness.RepoRoot(), "charts", "kubectl-stage"),
		"--namespace", api.SystemNamespace, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "hostNetwork=true", "--set", "k8sServiceHost=" + HubOverlay, "--set", "k8sServicePort=" + APIServerPort}
	return c.helm(ctx, append(args, set...)...)
}

// UpgradeChart changes the installed release's values (`helm upgrade
// --reuse-values --wait`).
func (c *Cluster) UpgradeChart(ctx context.Context, set ...string) (string, error) {
	return c.helm(ctx, append([]string{"upgrade", harness.ChartRelease, filepath.Join(harness.RepoRoot(), "charts", "kubectl-stage"),
		"--namespace", api.SystemNamespace, "--reuse-values", "--wait", "--timeout", "3m"}, set...)...)
}

// helm runs helm against the cluster, with its own home.
func (c *Cluster) helm(ctx context.Context, args ...string) (string, error) {
	c.step("helm %s", strings.Join(args, " "))
	helmHome := filepath.Join(c.Dir, "helm")
	cmd := exec.CommandContext(ctx, c.CP.Tools.Helm, append(args, "--kubeconfig", c.CP.Kubeconfig)...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+helmHome+"/cache", "HELM_CONFIG_HOME="+helmHome+"/config", "HELM_DATA_HOME="+helmHome+"/data")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("helm %s: %v\n%s", args[0], err, out)
	}
	return string(out), nil
}

// Stage runs `kubectl stage ARGS` against the cluster and returns its
// standard output.
func (c *Cluster) Stage(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, c.Bin.Stage, args...)
}

// Kubectl runs kubectl ARGS against the cluster and returns its standard output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	return c.run(ctx, c.CP.Tools.Kubectl, args...)
}

func (c *Cluster) run(ctx context.Context, bin string, args ...string) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"--kubeconfig", c.CP.Kubeconfig}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// PeerView asks the gossip peer on n, from n's own machine, whom it knows:
// the alive members' addresses.
func (c *Cluster) PeerView(ctx context.Context, n *Node) ([]string, error) {
	out, err := n.Machine.Run(ctx, c.Bin.Gossip, "peers", n.OverlayIP+":"+gossipPort)
	if err != nil {
		return nil, fmt.Errorf("%s: gossip peers: %v: %s", n.Name, err, out)
	}
	var view node.View
	if err := json.Unmarshal([]byte(out), &view); err != nil {
		return nil, fmt.Errorf("%s: gossip peers: %v: %s", n.Name, err, out)
	}
	var alive []string
	for _, m := range view.Members {
		if m.Alive {
			alive = append(alive, m.Addr)
		}
	}
	return alive, nil
}

// WaitViews waits until the gossip peer on every node, asked from its own
// machine, lists the peers of all nodes alive at their overlay addresses,
// and returns each node's view.
func (c *Cluster) WaitViews(ctx context.Context, timeout time.Duration) (map[string][]string, error) {
	views := map[string][]string{}
	var last error
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		for _, n := range c.Nodes {
			alive, err := c.PeerView(ctx, n)
			if err != nil {
				last = err
				return false, nil
			}
			for _, other := range c.Nodes {
				if !slices.Contains(alive, other.OverlayIP+":"+gossipPort) {
					last = fmt.Errorf("%s does not see %s at %s: %v", n.Name, other.Name, other.OverlayIP, alive)
					return false, nil
				}
			}
			slices.Sort(alive)
			views[n.Name] = alive
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("the gossip peers did not find each other over the overlay: %w (%v)", err, last)
	}
	return views, nil
}

// Diagnose is what a failure needs to be understood from a CI log alone:
// the nodes and pods as the API server sees them, the recent events, and the
// end of each machine's kubelet, containerd and tunnel logs.
func (c *Cluster) Diagnose(ctx context.Context) string {
	var b strings.Builder
	for _, args := range [][]string{
		{"get", "nodes", "-o", "wide"},
		{"get", "pods", "-A", "-o", "wide"},
		{"get", "events", "-A", "--sort-by", ".lastTimestamp"},
	} {
		out, err := c.Kubectl(ctx, args...)
		fmt.Fprintf(&b, "==> kubectl %s\n%s", strings.Join(args, " "), out)
		if err != nil {
			fmt.Fprintf(&b, "(%v)\n", err)
		}
	}
	for _, n := range c.Nodes {
		if n.Machine == nil {
			continue
		}
		for _, log := range []string{n.Machine.Path("/etc/kubectl-stage/kubelet.log"), filepath.Join(n.Machine.Dir, "logs", "containerd.log"), n.Machine.Path("/etc/kubectl-stage/openvpn.log"),
			n.Machine.Path("/etc/kubectl-stage/agent.log")} {
			fmt.Fprintf(&b, "==> %s: %s\n%s\n", n.Name, filepath.Base(log), Tail(log, 25))
		}
	}
	return b.String()
}

// Stop stops and removes everything, in reverse order, and reports what
// could not be removed.
func (c *Cluster) Stop() error {
	var errs []error
	for i := len(c.undo) - 1; i >= 0; i-- {
		errs = append(errs, c.undo[i]())
	}
	c.undo = nil
	return errors.Join(errs...)
}

func (c *Cluster) step(format string, args ...any) {
	if c.Progress != nil {
		fmt.Fprintf(c.Progress, "[%5.1fs] ==> %s\n", time.Since(c.started).Seconds(), fmt.Sprintf(format, args...))
	}
}

// Ready says whether n's Ready condition is True.
func Ready(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// InternalIP is n's InternalIP address.
func InternalIP(n *corev1.Node) string {
	for _, a := range n.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
}

// Tail is the last n lines of the file at path.
func Tail(path string, n int) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func poll(ctx context.Context, timeout time.Duration, what string, ok func() bool) error {
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) { return ok(), nil }); err != nil {
		return fmt.Errorf("waiting for %s: %w", what, err)
	}
	return nil
}
