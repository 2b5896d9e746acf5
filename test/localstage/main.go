// Command localstage runs a staging cluster on this machine and enrolls
// simulated sites into it with the real kubectl stage commands: a real
// control plane (etcd, kube-apiserver, kube-scheduler,
// kube-controller-manager) set up as kubeadm would, `kubectl stage init`,
// one `kubectl stage join` per node (bundles and hub configuration written
// under .cache/local), and kwok playing each joined node's kubelet with its
// overlay IP and site labels. It prints sites and status, how to point
// kubectl at the cluster, and runs until interrupted.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

func main() {
	sites := flag.String("sites", "tokyo,osaka,frankfurt", "comma-separated site names")
	nodesPerSite := flag.Int("nodes-per-site", 2, "simulated nodes at each site")
	workDir := flag.String("dir", filepath.Join(harness.RepoRoot(), ".cache", "local"), "where to write the kubeconfig, join bundles and hub configuration")
	hold := flag.Duration("for", 0, "stop after this long (0: run until Ctrl-C)")
	flag.Parse()

	if err := run(strings.Split(*sites, ","), *nodesPerSite, *workDir, *hold); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run(sites []string, nodesPerSite int, dir string, hold time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.MkdirAll(filepath.Join(dir, "bundles"), 0o700); err != nil {
		return err
	}

	step("starting the control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok)")
	started := time.Now()
	opts := harness.All()
	opts.ServingIPs = []net.IP{net.ParseIP("10.23.0.1")} // the hub's overlay address, as init checks
	cp, err := harness.Start(ctx, opts)
	if err != nil {
		return err
	}
	defer cp.Stop()
	if err := cp.KubeadmBootstrap(ctx); err != nil {
		return err
	}
	fmt.Printf("control plane %s up at %s in %s\n", cp.Tools.KubernetesVersion, cp.URL(), time.Since(started).Round(time.Millisecond))

	kubeconfig := filepath.Join(dir, "kubeconfig")
	data, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfig, data, 0o600); err != nil {
		return err
	}
	defer func() { _ = os.Remove(kubeconfig) }()

	hubDir := filepath.Join(dir, "hub")
	if err := stage(kubeconfig, "init", "--hub-endpoint", "198.18.0.1:1194", "--hub-config-dir", hubDir); err != nil {
		return err
	}
	store := site.NewStore(cp.Client)
	for _, s := range sites {
		for i := 1; i <= nodesPerSite; i++ {
			node := fmt.Sprintf("%s-%d", s, i)
			if err := stage(kubeconfig, "join", s, "--node", node, "-f", filepath.Join(dir, "bundles", node+".join.sh")); err != nil {
				return err
			}
			// The person at the site runs the bundle; here kwok plays the
			// kubelet that kubeadm join would start, with the overlay IP.
			rec, _, err := store.Node(ctx, node)
			if err != nil {
				return err
			}
			if _, err := cp.AddNode(ctx, harness.Node{Name: node, Site: s, InternalIP: rec.OverlayIP.String()}); err != nil {
				return err
			}
		}
	}
	if err := stage(kubeconfig, "hub-config", "--dir", hubDir); err != nil {
		return err
	}
	if err := stage(kubeconfig, "sites"); err != nil {
		return err
	}
	if err := stage(kubeconfig, "status"); err != nil {
		return err
	}

	fmt.Printf(`
The staging cluster is ready: join bundles in %s, hub configuration in %s.
In another shell:

  export KUBECONFIG=%s PATH=%s:%s:$PATH
  kubectl get nodes -L %s
  kubectl stage status -o wide

`, filepath.Join(dir, "bundles"), hubDir, kubeconfig, filepath.Join(harness.RepoRoot(), "bin"), filepath.Dir(cp.Tools.Kubectl), api.LabelSite)

	if hold > 0 {
		fmt.Printf("stopping in %s\n", hold)
		select {
		case <-ctx.Done():
		case <-time.After(hold):
		}
	} else {
		fmt.Println("Press Ctrl-C to stop.")
		<-ctx.Done()
	}
	step("stopping the control plane")
	return nil
}

// stage runs `kubectl stage ARGS` in process, echoing the command and its output.
func stage(kubeconfig string, args ...string) error {
	step("kubectl stage " + strings.Join(args, " "))
	var out bytes.Buffer
	root := cmd.NewCmdStage(genericiooptions.IOStreams{In: os.Stdin, Out: &out, ErrOut: &out})
	root.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := root.ExecuteContext(context.Background())
	fmt.Print(indent(out.String()))
	if err != nil {
		return fmt.Errorf("kubectl stage %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func step(msg string) { fmt.Printf("\n==> %s\n", msg) }

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ") + "\n"
}
