package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

const (
	appNamespace = "p2p"
	appName      = "gossip"
	appPort      = "7946"
	imageV2      = "ghcr.io/kubectl-stage/gossip:v2"
)

// Report is what each step produced, for the demo's test.
type Report struct {
	// Mode is the mode the demo ran in (ModeReal or ModeSimulated).
	Mode string
	// JoinSeconds are, in real mode, each node's seconds from
	// `bash NODE.join.sh` to Ready.
	JoinSeconds []float64
	// Peers are the gossip pods after the rollout, with the environment the
	// webhook injected, resolved as the kubelet would.
	Peers        []Peer
	RolloutPhase rollout.Phase
	RolloutOrder []string
	// Views are the peers' own membership views over the overlay (root).
	Views         map[string][]string
	OverlaySkip   string
	OverlayProven bool
}

// OverlaySummary says how the VPN part went.
func (r *Report) OverlaySummary() string {
	if r.OverlaySkip != "" {
		return "skipped (" + r.OverlaySkip + ")"
	}
	return fmt.Sprintf("%d peers found each other over OpenVPN", len(r.Views))
}

// Peer is one gossip pod.
type Peer struct {
	Pod, Site, Node, HostIP, OverlayIP string
	Env                                []harness.EnvVar
}

// Run plays the whole story and cleans up after itself.
func Run(ctx context.Context, o Options) (*Report, error) {
	if err := os.MkdirAll(filepath.Join(o.Dir, "bundles"), 0o700); err != nil {
		return nil, err
	}
	mode, why, err := o.resolveMode()
	if err != nil {
		return nil, err
	}
	o.step("mode: %s nodes (%s)", mode, why)
	if mode == ModeReal {
		report, err := runReal(ctx, o)
		if report != nil {
			report.Mode = mode
		}
		return report, err
	}
	report, err := runSimulated(ctx, o)
	if report != nil {
		report.Mode = mode
	}
	return report, err
}

// runSimulated plays the story with kwok as every node's kubelet and, as
// root, the peers in network namespaces behind real OpenVPN tunnels.
func runSimulated(ctx context.Context, o Options) (*Report, error) {
	binaries, err := findBinaries(o)
	if err != nil {
		return nil, err
	}

	o.step("starting the control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok)")
	started := time.Now()
	opts := harness.All()
	opts.ServingIPs = []net.IP{net.ParseIP("10.23.0.1")} // the hub's overlay address, as init checks
	cp, err := harness.Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer cp.Stop()
	if err := cp.KubeadmBootstrap(ctx); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "control plane %s up at %s in %s\n", cp.Tools.KubernetesVersion, cp.URL(), time.Since(started).Round(time.Millisecond))
	kubeconfig := filepath.Join(o.Dir, "kubeconfig")
	data, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		return nil, err
	}
	defer func() { _ = os.Remove(kubeconfig) }()
	d := &demo{Options: o, cp: cp, kubeconfig: kubeconfig, bin: binaries, hubDir: filepath.Join(o.Dir, "hub")}

	if err := d.enroll(ctx); err != nil {
		return nil, err
	}
	stopWebhook, err := d.installWebhook(ctx)
	if err != nil {
		return nil, err
	}
	defer stopWebhook()

	report, err := d.playApp(ctx)
	if err != nil {
		return nil, err
	}

	if ok, why := netns.Available(); o.NoVPN || !ok {
		if o.NoVPN {
			why = "-no-vpn"
		}
		report.OverlaySkip = why
		o.step("skipping real OpenVPN tunnels between network namespaces: %s (sudo make demo runs them)", why)
	} else if err := d.overlay(ctx, report); err != nil {
		return nil, err
	}

	d.keepUntilDone(ctx, kubeconfig, filepath.Join(harness.RepoRoot(), "bin"))
	return report, nil
}

// keepUntilDone, with -keep, says how to use the cluster and waits for
// Ctrl-C; then the demo stops everything.
func (d *demo) keepUntilDone(ctx context.Context, kubeconfig, pluginDir string) {
	if d.Keep {
		fmt.Fprintf(d.Out, `
The staging cluster keeps running; in another shell:

  export KUBECONFIG=%s PATH=%s:%s:$PATH
  kubectl get nodes -L %s -o wide
  kubectl stage status -o wide
  kubectl stage rollout status -n %s %s

Press Ctrl-C to stop.
`, kubeconfig, pluginDir, filepath.Dir(d.cp.Tools.Kubectl), api.LabelSite, appNamespace, appName)
		<-ctx.Done()
	}
	d.step("stopping everything and cleaning up")
}

type demo struct {
	Options
	cp         *harness.ControlPlane
	kubeconfig string
	hubDir     string
	bin        binaries
}

// binaries are the programs the demo runs as separate processes.
type binaries struct{ webhook, gossip string }

// findBinaries uses bin/ (make build) or builds into the demo directory.
func findBinaries(o Options) (binaries, error) {
	find := func(name, pkg string) (string, error) {
		if path := filepath.Join(harness.RepoRoot(), "bin", name); fileExists(path) {
			return path, nil
		}
		path := filepath.Join(o.Dir, "bin", name)
		cmd := exec.Command("go", "build", "-o", path, pkg)
		cmd.Dir = harness.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
		}
		return path, nil
	}
	webhook, err := find("stage-webhook", "./webhook/cmd/stage-webhook")
	if err != nil {
		return binaries{}, err
	}
	gossip, err := find("gossip", "./examples/gossip")
	return binaries{webhook: webhook, gossip: gossip}, err
}

func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// enroll runs init and a join per node, as an operator would, with kwok as
// each node's kubelet.
func (d *demo) enroll(ctx context.Context) error {
	if err := d.stage(ctx, "init", "--hub-endpoint", netns.HubAddress+":1194", "--hub-config-dir", d.hubDir); err != nil {
		return err
	}
	store := site.NewStore(d.cp.Client)
	for _, s := range d.Sites {
		for i := 1; i <= d.NodesPerSite; i++ {
			node := fmt.Sprintf("%s-%d", s, i)
			if err := d.stage(ctx, "join", s, "--node", node, "-f", d.bundle(node)); err != nil {
				return err
			}
			// The person at the site runs the bundle; here kwok plays the
			// kubelet that kubeadm join would start, with the overlay IP.
			rec, _, err := store.Node(ctx, node)
			if err != nil {
				return err
			}
			if _, err := d.cp.AddNode(ctx, harness.Node{Name: node, Site: s, InternalIP: rec.OverlayIP.String()}); err != nil {
				return err
			}
		}
	}
	if err := d.stage(ctx, "hub-config", "--dir", d.hubDir); err != nil {
		return err
	}
	return d.stage(ctx, "sites")
}

func (d *demo) bundle(node string) string { return filepath.Join(d.Dir, "bundles", node+".join.sh") }

// playApp deploys the example, rolls it out to v2 site by site, and shows
// the peers and the nodes' status.
func (d *demo) playApp(ctx context.Context) (*Report, error) {
	report := &Report{}
	if err := d.deployApp(ctx); err != nil {
		return nil, err
	}
	if err := d.rollOut(ctx, report); err != nil {
		return nil, err
	}
	var err error
	if report.Peers, err = d.peers(ctx); err != nil {
		return nil, err
	}
	d.printPeers(report.Peers)
	return report, d.stage(ctx, "status", "-o", "wide")
}

// deployApp applies the example's manifests and waits for a Ready peer per site.
func (d *demo) deployApp(ctx context.Context) error {
	manifest := filepath.Join(harness.RepoRoot(), "examples", "gossip", "manifests", "gossip.yaml")
	d.step("kubectl apply -f examples/gossip/manifests/gossip.yaml")
	if err := d.kubectl(ctx, nil, "apply", "-f", manifest); err != nil {
		return err
	}
	if err := d.waitPeersReady(ctx, ""); err != nil {
		return err
	}
	peers, err := d.peers(ctx)
	if err != nil {
		return err
	}
	d.step("the webhook placed one peer per site and gave each its overlay address and seeds")
	d.printPeers(peers)
	return nil
}

// waitPeersReady waits until every site has one Ready peer (running image,
// if set).
func (d *demo) waitPeersReady(ctx context.Context, image string) error {
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 3*time.Minute, true, func(ctx context.Context) (bool, error) {
		peers, err := d.peers(ctx)
		if err != nil || len(peers) != len(d.Sites) {
			return false, nil
		}
		pods, err := d.cp.Client.CoreV1().Pods(appNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + appName})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if !podReady(&p) || (image != "" && p.Spec.Containers[0].Image != image) {
				return false, nil
			}
		}
		return true, nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// rollOut rolls the app to v2 site by site and reads back the outcome.
func (d *demo) rollOut(ctx context.Context, report *Report) error {
	if err := d.stage(ctx, "rollout", "-n", appNamespace, "sts/"+appName, "--image", appName+"="+imageV2,
		"--min-ready", "1s", "--timeout", "2m"); err != nil {
		return err
	}
	if err := d.stage(ctx, "rollout", "history", "-n", appNamespace, appName); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := d.stageTo(ctx, &buf, "rollout", "status", "-n", appNamespace, appName, "-o", "json"); err != nil {
		return err
	}
	var status v1alpha1.Rollout
	if err := json.Unmarshal(buf.Bytes(), &status); err != nil {
		return fmt.Errorf("reading rollout status: %w", err)
	}
	report.RolloutPhase = rollout.Phase(status.Status.Phase)
	report.RolloutOrder = nil
	for _, s := range status.Status.Sites {
		if s.Result == v1alpha1.SiteUpdated {
			report.RolloutOrder = append(report.RolloutOrder, s.Name)
		}
	}
	return d.waitPeersReady(ctx, imageV2)
}

// peers lists the gossip pods with their site and resolved environment.
func (d *demo) peers(ctx context.Context) ([]Peer, error) {
	pods, err := d.cp.Client.CoreV1().Pods(appNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + appName})
	if err != nil {
		return nil, err
	}
	store := site.NewStore(d.cp.Client)
	var peers []Peer
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil || p.Spec.NodeName == "" {
			continue
		}
		node, err := d.cp.Client.CoreV1().Nodes().Get(ctx, p.Spec.NodeName, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		rec, _, err := store.Node(ctx, p.Spec.NodeName)
		if err != nil {
			return nil, err
		}
		peers = append(peers, Peer{
			Pod: p.Name, Site: node.Labels[api.LabelSite], Node: p.Spec.NodeName,
			HostIP: p.Status.HostIP, OverlayIP: rec.OverlayIP.String(), Env: harness.ResolveEnv(p, &p.Spec.Containers[0]),
		})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Pod, b.Pod) })
	return peers, nil
}

func (d *demo) printPeers(peers []Peer) {
	var table bytes.Buffer
	defer func() { _, _ = d.Out.Write(table.Bytes()) }()
	w := tabwriter.NewWriter(&table, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "    POD\tSITE\tNODE\tSTAGE_SITE\tSTAGE_ADVERTISE_ADDR\tSTAGE_PEER_SEEDS")
	for _, p := range peers {
		env := harness.EnvMap(p.Env)
		fmt.Fprintf(w, "    %s\t%s\t%s\t%s\t%s\t%s\n", p.Pod, p.Site, p.Node, env[api.EnvSite], env[api.EnvAdvertiseAddr], orNone(env[api.EnvPeerSeeds]))
	}
	_ = w.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none: first peer)"
	}
	return s
}
