// Package collect implements `kubectl stage collect`: an experiment
// record for a bug report.
package collect

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/collect"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
)

// Options are the flags of `collect`.
type Options struct {
	// Output is the record's path: a new directory, or FILE.tar.gz.
	Output string

	app, namespace string
	collector      collect.Collector
	now            func() time.Time
	genericiooptions.IOStreams
}

// NewCmdCollect returns the `collect` command.
func NewCmdCollect(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{now: time.Now, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "collect [APP] [-o DIR|FILE.tar.gz]",
		Short: "Write one record of the staging cluster and an app for a bug report: sites, nodes, pods, logs, events, graph, rollouts",
		Long: templates.LongDesc(`
			Write everything a bug report about the system under test needs into a
			new directory, or a FILE.tar.gz: the sites and enrolled nodes, the
			cluster's Nodes (conditions, addresses, versions) and the stage
			webhook's configuration; with APP also the app's pods in the namespace,
			each container's log (and the previous one after a restart), their
			events, the peer graph, and each workload's rollout state and history.
			manifest.yaml lists every file and what could not be collected, and why.

			Only the API server is asked; no Secret is ever read, so none can be in
			the record. Files are readable by you only (0600). Nothing is left
			behind if writing fails, and an existing path is never overwritten.`),
		Example: templates.Examples(`
			kubectl stage collect gossip -n p2p -o gossip-bug.tar.gz
			kubectl stage collect -o cluster-record
			tar -xzf gossip-bug.tar.gz manifest.yaml -O`),
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE:              cmdutil.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "Where to write the record: a new directory, or FILE.tar.gz (default: kubectl-stage-record-TIME.tar.gz)")
	return cmd
}

// Complete reads the app, the namespace, the path and the client.
func (o *Options) Complete(f kcmdutil.Factory, _ *cobra.Command, args []string) error {
	if len(args) == 1 {
		o.app = args[0]
	}
	if o.Output == "" {
		o.Output = "kubectl-stage-record-" + o.now().UTC().Format("20060102-150405") + ".tar.gz"
	}
	var err error
	if o.namespace, _, err = f.ToRawKubeConfigLoader().Namespace(); err != nil {
		return err
	}
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.collector = collect.Collector{Client: client, Graph: peergraph.Reader{Client: client, Timeout: 5 * time.Second, Parallel: 16}, Now: o.now}
	return nil
}

// Validate has nothing to check before the path is tried.
func (o *Options) Validate() error { return nil }

// Run writes the record.
func (o *Options) Run(ctx context.Context) error {
	sink, err := collect.NewSink(o.Output, o.now())
	if err != nil {
		return err
	}
	manifest, err := o.collector.Collect(ctx, sink, o.namespace, o.app)
	if err != nil {
		return err
	}
	for _, p := range manifest.Problems {
		fmt.Fprintf(o.ErrOut, "warning: not collected: %s: %s\n", p.What, p.Error)
	}
	_, err = fmt.Fprintf(o.Out, "wrote %d files to %s (%d not collected: see manifest.yaml)\n", len(manifest.Files)+1, o.Output, len(manifest.Problems))
	return err
}
