// Command localstage runs a staging cluster on this machine: a real control
// plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager) and
// kwok-simulated nodes at several sites, each node labelled with its site and
// reporting an overlay address as its InternalIP, as a node enrolled by
// `kubectl stage join` would. It prints how to point kubectl at it and runs
// until interrupted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

func main() {
	sites := flag.String("sites", "tokyo,osaka,frankfurt", "comma-separated site names")
	nodesPerSite := flag.Int("nodes-per-site", 2, "simulated nodes at each site")
	kubeconfig := flag.String("kubeconfig-out", filepath.Join(harness.RepoRoot(), ".cache", "local", "kubeconfig"), "where to write the admin kubeconfig")
	hold := flag.Duration("for", 0, "stop after this long (0: run until Ctrl-C)")
	flag.Parse()

	if err := run(strings.Split(*sites, ","), *nodesPerSite, *kubeconfig, *hold); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}

func run(sites []string, nodesPerSite int, kubeconfigOut string, hold time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Println("starting the control plane (etcd, kube-apiserver, kube-scheduler, kube-controller-manager, kwok)...")
	started := time.Now()
	cp, err := harness.Start(ctx, harness.All())
	if err != nil {
		return err
	}
	defer cp.Stop()
	fmt.Printf("control plane %s up at %s in %s\n", cp.Tools.KubernetesVersion, cp.URL(), time.Since(started).Round(time.Millisecond))

	fmt.Println("\nSITE\tNODE\tOVERLAY IP")
	host := 10
	for _, site := range sites {
		for i := 0; i < nodesPerSite; i++ {
			name := fmt.Sprintf("%s-%d", site, i+1)
			ip := fmt.Sprintf("10.23.0.%d", host)
			host++
			if _, err := cp.AddNode(ctx, harness.Node{Name: name, Site: site, InternalIP: ip}); err != nil {
				return err
			}
			fmt.Printf("%s\t%s\t%s\n", site, name, ip)
		}
	}

	if err := os.MkdirAll(filepath.Dir(kubeconfigOut), 0o700); err != nil {
		return err
	}
	data, err := os.ReadFile(cp.Kubeconfig)
	if err != nil {
		return err
	}
	if err := os.WriteFile(kubeconfigOut, data, 0o600); err != nil {
		return err
	}
	fmt.Printf(`
The staging cluster is ready. In another shell:

  export KUBECONFIG=%s PATH=%s:%s:$PATH
  kubectl get nodes -L %s
  kubectl stage version

`, kubeconfigOut, filepath.Join(harness.RepoRoot(), "bin"), filepath.Dir(cp.Tools.Kubectl), api.LabelSite)

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
	fmt.Println("stopping the control plane...")
	_ = os.Remove(kubeconfigOut)
	return nil
}
