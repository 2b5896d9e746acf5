// Package net implements `kubectl stage net`: the overlay network between
// the sites.
package net

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// NewCmdNet returns the `net` command group.
func NewCmdNet(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := newMatrixOptions(streams)
	cmd := &cobra.Command{
		Use:   "net",
		Short: "The network between the sites: measured round trips and loss, and the conditions applied",
		Long: templates.LongDesc(`
			Show, for every ordered pair of sites, the round trip time (p50 and
			p95) and loss the node agents measure over the overlay, next to the
			network conditions asked for (kubectl stage net apply, partition)
			and whether every node of the sending site applies them, or what
			it could not apply and why. -o wide adds every node pair, and which
			agent applies the conditions on each node: the Helm chart's agent pod
			(netAgent.enabled) or the join bundle's process.`),
		Example: templates.Examples(`
			kubectl stage net
			kubectl stage net -o wide
			kubectl stage net -o yaml`),
		Args: cobra.NoArgs,
		RunE: cmdutil.RunE(f, o),
	}
	o.PrintFlags.AddFlags(cmd)
	cmd.AddCommand(NewCmdPaths(f, streams))
	cmd.AddCommand(newCmdNetConditions(f, streams)...)
	return cmd
}

// PathsOptions are the flags of `net paths`.
type PathsOptions struct {
	PrintFlags *cmdutil.PrintFlags

	store *site.Store
	genericiooptions.IOStreams
}

// NewCmdPaths returns the `net paths` command.
func NewCmdPaths(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PathsOptions{PrintFlags: cmdutil.NewPrintFlags(false), IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "paths",
		Short: "Show, for every pair of nodes, whether packets go directly or through the hub",
		Long: templates.LongDesc(`
			Show the overlay's shape: for every pair of enrolled nodes, whether
			their packets go straight between their sites (direct) or through
			the hub (relayed), why, and since when. A WireGuard overlay is a
			mesh: a pair is direct when both nodes declared an endpoint at join
			(--endpoint) and neither is --relay-only; the node agents configure
			it. An OpenVPN overlay is a star: every pair is relayed.

			Records the agents refuse (a node claiming another node's overlay
			address or key) are named on stderr.`),
		Example: templates.Examples(`
			kubectl stage net paths
			kubectl stage net paths -o yaml`),
		Args: cobra.NoArgs,
		RunE: cmdutil.RunE(f, o),
	}
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete builds the client (without contacting the cluster).
func (o *PathsOptions) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) error {
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.store = site.NewStore(client)
	return nil
}

// Validate checks the output flags.
func (o *PathsOptions) Validate() error { return o.PrintFlags.Validate() }

// Run prints every pair's path.
func (o *PathsOptions) Run(ctx context.Context) error {
	list, refused, err := o.store.Paths(ctx)
	if err != nil {
		return err
	}
	for _, r := range refused {
		fmt.Fprintf(o.ErrOut, "warning: the node agents refuse node %s; inspect its record (kubectl get configmap -n kubectl-stage-system node-%s -o yaml) and remove it with `kubectl stage leave %s`\n", r, r.Node, r.Node)
	}
	if !o.PrintFlags.HumanReadable() {
		return o.PrintFlags.Print(list, o.Out)
	}
	fmt.Fprintf(o.Out, "overlay: %s\n", list.Shape)
	w := printers.GetNewTabWriter(o.Out)
	fmt.Fprintln(w, "NODE-A\tSITE-A\tNODE-B\tSITE-B\tPATH\tSINCE\tREASON")
	for _, p := range list.Items {
		s := p.Spec
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.NodeA, s.SiteA, s.NodeB, s.SiteB, s.Path, duration.HumanDuration(metav1.Now().Sub(s.Since.Time))+" ago", s.Reason)
	}
	return w.Flush()
}
