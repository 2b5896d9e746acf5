// Package graph implements `kubectl stage graph`: who knows whom among an
// app's peers, from each peer's own view.
package graph

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
)

// Formats the command draws itself.
const (
	outputDOT     = "dot"
	outputMermaid = "mermaid"
)

// Options are the flags of `graph`.
type Options struct {
	PrintFlags *cmdutil.PrintFlags
	// Timeout bounds the reading of each peer's view.
	Timeout time.Duration

	app, namespace string
	reader         peergraph.Reader
	genericiooptions.IOStreams
}

// NewCmdGraph returns the `graph` command.
func NewCmdGraph(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{PrintFlags: cmdutil.NewPrintFlags(true).WithFormats(outputDOT, outputMermaid), Timeout: 5 * time.Second, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "graph APP",
		Short: "Show who knows whom among an app's peers, by site, from each peer's own view",
		Long: templates.LongDesc(`
			Read every peer's own view of the network and show the graph it makes:
			per peer, how many other peers it knows and how many of them are at
			other sites, and what it lists that is no peer of the app; then the
			connected components, the isolated peers, the share of links between
			sites and the sites with no link to another site.

			A peer declares where it serves its view with the annotation
			` + api.AnnotationPeersEndpoint + ` (":7946/peers": the pod's port and path).
			The view is read through the API server's pod proxy, so no network
			path from here to the peers is needed. It is a JSON array of peers, or
			an object whose "peers" or "members" field is that array; a peer is an
			address ("ip[:port]") or pod name, or an object with "name", "addr"
			and "alive" (or "state"). A peer that does not answer is shown as such.`),
		Example: templates.Examples(`
			kubectl stage graph gossip -n p2p
			kubectl stage graph gossip -n p2p -o wide
			kubectl stage graph gossip -n p2p -o dot | dot -Tsvg > gossip.svg
			kubectl stage graph gossip -n p2p -o mermaid
			kubectl stage graph gossip -n p2p -o jsonpath='{.summary.components}'`),
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE:              cmdutil.RunE(f, o),
	}
	o.PrintFlags.AddFlags(cmd)
	cmd.Flags().DurationVar(&o.Timeout, "timeout", o.Timeout, "How long to wait for each peer's view")
	return cmd
}

// Complete reads the app, the namespace and the client.
func (o *Options) Complete(f kcmdutil.Factory, _ *cobra.Command, args []string) error {
	o.app = args[0]
	var err error
	if o.namespace, _, err = f.ToRawKubeConfigLoader().Namespace(); err != nil {
		return err
	}
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.reader = peergraph.Reader{Client: client, Timeout: o.Timeout, Parallel: 16}
	return nil
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout=%s: must be positive, such as 5s", o.Timeout)
	}
	return o.PrintFlags.Validate()
}

// Run reads the graph and prints it.
func (o *Options) Run(ctx context.Context) error {
	g, err := o.reader.Read(ctx, o.namespace, o.app)
	if err != nil {
		return err
	}
	switch o.PrintFlags.Format() {
	case outputDOT:
		return peergraph.WriteDOT(o.Out, g)
	case outputMermaid:
		return peergraph.WriteMermaid(o.Out, g)
	}
	if !o.PrintFlags.HumanReadable() {
		return o.PrintFlags.Print(g, o.Out)
	}
	w := printers.GetNewTabWriter(o.Out)
	printTable(w, g, o.PrintFlags.Wide())
	if err := w.Flush(); err != nil {
		return err
	}
	return printSummary(o.Out, g)
}

func printTable(w io.Writer, g *v1alpha1.PeerGraph, wide bool) {
	header := "PEER\tSITE\tNODE\tKNOWN\tCROSS-SITE\tUNKNOWN\tVIEW"
	if wide {
		header += "\tENDPOINT\tUNKNOWN ADDRESSES"
	}
	fmt.Fprintln(w, header)
	for _, p := range g.Peers {
		line := fmt.Sprintf("%s\t%s\t%s\t", p.Pod, p.Site, p.Node)
		if p.Answered {
			line += fmt.Sprintf("%d\t%d\t%d\tok", p.Known, p.CrossSite, len(p.Unknown))
		} else {
			line += "-\t-\t-\tno answer: " + p.Error
		}
		if wide {
			line += "\t" + orNone(p.Endpoint) + "\t" + orNone(strings.Join(p.Unknown, ","))
		}
		fmt.Fprintln(w, line)
	}
}

func printSummary(w io.Writer, g *v1alpha1.PeerGraph) error {
	s := g.Summary
	components := "1 connected component"
	if s.Components != 1 {
		components = fmt.Sprintf("%d connected components", s.Components)
	}
	_, err := fmt.Fprintf(w, "\n%d peers, %d answered; %s; %d links, %d across sites (%d%%)\nisolated: %s\nnot answering: %s\nsites with no link to another site: %s\n",
		s.Peers, s.Answered, components, s.Links, s.CrossSiteLinks, s.CrossSitePercent,
		orNone(strings.Join(s.Isolated, ", ")), orNone(strings.Join(s.NotAnswering, ", ")), orNone(strings.Join(s.SitesWithoutCrossSiteLinks, ", ")))
	return err
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
