// Command localstage is README's main job: the whole kubectl-stage story on
// one machine, with real components and nothing downloaded. It runs in one
// of two modes (-mode; auto picks real when it can run here):
//
// Real nodes (root, after make tools): a control plane set up as kubeadm
// would, an OpenVPN hub, and a machine per site (its own network, mount,
// UTS and PID namespaces, containerd and cgroups) that runs its join bundle
// as a user would: tunnel, kubeadm join over the overlay, a real kubelet.
// The chart is installed with helm install (the webhook runs as pods from
// make image's image), the gossip example's peers run on the nodes and find
// each other over the tunnels, and kubectl stage rollout replaces them site
// by site (test/realnode).
//
// Simulated nodes:
//
//  1. A real control plane (etcd, kube-apiserver, kube-scheduler,
//     kube-controller-manager) set up as kubeadm would.
//  2. `kubectl stage init`, then one `kubectl stage join` per node at three
//     sites; kwok plays each joined node's kubelet with its overlay IP.
//  3. The stage webhook installed from the Helm chart's manifests (the
//     webhook process runs on this machine, since kwok nodes run no
//     containers; the chart's webhook.url mode points the API server at it).
//  4. The gossip example deployed, its mutated pods shown per site, then
//     `kubectl stage rollout` to a new version site by site, and status.
//  5. As root: real OpenVPN tunnels from the join bundles between network
//     namespaces (one per site, plus the hub), and the gossip peers started
//     in them with exactly the environment the webhook injected; they find
//     each other across sites over the overlay only.
//
// Everything is stopped and removed at the end (-keep holds the cluster
// open until Ctrl-C first).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

func main() {
	var o Options
	sites := flag.String("sites", "tokyo,osaka,frankfurt", "comma-separated site names")
	flag.IntVar(&o.NodesPerSite, "nodes-per-site", 2, "simulated nodes at each site (real mode: one)")
	flag.StringVar(&o.Dir, "dir", filepath.Join(harness.RepoRoot(), ".cache", "local"), "where to write the kubeconfig, join bundles, hub configuration and logs")
	flag.BoolVar(&o.Keep, "keep", false, "keep the cluster running at the end until Ctrl-C")
	flag.BoolVar(&o.NoVPN, "no-vpn", false, "simulated mode: skip the OpenVPN part even as root")
	flag.StringVar(&o.Mode, "mode", ModeAuto, "real: a machine per site runs its join bundle (kubeadm join, kubelet, containerd; root and make tools); simulated: kwok nodes; auto: real when it can run here")
	flag.Parse()
	o.Sites = strings.Split(*sites, ",")
	o.Out = os.Stdout

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	started := time.Now()
	report, err := Run(ctx, o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("\n==> demo finished in %s (%s nodes): %d sites, %d peers, rollout %s, overlay: %s\n",
		time.Since(started).Round(time.Second), report.Mode, len(o.Sites), len(report.Peers), report.RolloutPhase, report.OverlaySummary())
}

// Options choose the demo's size and where it writes.
type Options struct {
	Sites        []string
	NodesPerSite int
	Dir          string
	Keep         bool
	NoVPN        bool
	Mode         string
	Out          io.Writer
}

func (o Options) step(format string, args ...any) {
	fmt.Fprintf(o.Out, "\n==> "+format+"\n", args...)
}
