// Package sites implements `kubectl stage sites` and `kubectl stage status`:
// two views of the same report (per site, and per node).
package sites

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// view prints one side of the report.
type view func(o *Options, r *site.Report, w io.Writer) error

// Options are the flags of `sites` and `status`.
type Options struct {
	Output *cmdutil.OutputFlags

	kind    string
	view    view
	factory kcmdutil.Factory
	store   *site.Store
	now     func() time.Time
	genericiooptions.IOStreams
}

// List is what -o json|yaml prints.
type List struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Items      any    `json:"items"`
}

// NewCmdSites returns the `sites` command.
func NewCmdSites(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, streams, "SiteList", printSites, &cobra.Command{
		Use:   "sites",
		Short: "List the sites with their nodes, readiness and the peers running there",
		Long: templates.LongDesc(`
			List the staging cluster's sites: how many nodes each has, how many are
			Ready, and how many pods of each app run there.`),
		Example: templates.Examples(`
			kubectl stage sites
			kubectl stage sites -o wide
			kubectl stage sites -o json`),
	})
}

// NewCmdStatus returns the `status` command.
func NewCmdStatus(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, streams, "NodeStatusList", printNodes, &cobra.Command{
		Use:   "status",
		Short: "Show every enrolled node: site, overlay IP, Ready state, credential and token expiry",
		Long: templates.LongDesc(`
			Show what is enrolled where: each node's site, overlay IP, whether it
			has joined and is Ready, and when its VPN credentials and bootstrap
			token expire.`),
		Example: templates.Examples(`
			kubectl stage status
			kubectl stage status -o wide
			kubectl stage status -o yaml`),
	})
}

func newCmd(f kcmdutil.Factory, streams genericiooptions.IOStreams, kind string, v view, cmd *cobra.Command) *cobra.Command {
	o := &Options{Output: cmdutil.NewOutputFlags(true), kind: kind, view: v, factory: f, now: time.Now, IOStreams: streams}
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := o.Complete(); err != nil {
			return err
		}
		if err := o.Output.Validate(); err != nil {
			return err
		}
		return o.Run(cmd.Context())
	}
	o.Output.AddFlags(cmd)
	return cmd
}

// Complete builds the client.
func (o *Options) Complete() error {
	client, err := o.factory.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.store = site.NewStore(client)
	return nil
}

// Run prints the report.
func (o *Options) Run(ctx context.Context) error {
	if _, err := o.store.Config(ctx); err != nil {
		return err
	}
	report, err := o.store.BuildReport(ctx, o.now())
	if err != nil {
		return err
	}
	if o.Output.Structured() {
		var items any = report.Sites
		if o.kind == "NodeStatusList" {
			items = report.Nodes
		}
		return o.Output.PrintStructured(o.Out, List{APIVersion: api.Group + "/v1alpha1", Kind: o.kind, Items: items})
	}
	w := printers.GetNewTabWriter(o.Out)
	if err := o.view(o, report, w); err != nil {
		return err
	}
	return w.Flush()
}

func printSites(o *Options, r *site.Report, w io.Writer) error {
	if len(r.Sites) == 0 {
		_, err := fmt.Fprintln(o.ErrOut, "No sites yet: enroll a node with kubectl stage join SITE --node NAME")
		return err
	}
	header := "SITE\tNODES\tREADY\tPODS\tAGE"
	if o.Output.Wide() {
		header += "\tAPPS"
	}
	fmt.Fprintln(w, header)
	for _, s := range r.Sites {
		line := fmt.Sprintf("%s\t%d\t%d/%d\t%d\t%s", s.Name, s.Nodes, s.Ready, s.Nodes, s.Pods, age(s.CreatedAt, o.now()))
		if o.Output.Wide() {
			line += "\t" + formatApps(s.Apps)
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func printNodes(o *Options, r *site.Report, w io.Writer) error {
	if len(r.Nodes) == 0 {
		_, err := fmt.Fprintln(o.ErrOut, "No nodes enrolled: enroll one with kubectl stage join SITE --node NAME")
		return err
	}
	now := o.now()
	header := "NODE\tSITE\tOVERLAY IP\tSTATUS\tCREDENTIAL EXPIRES\tTOKEN"
	if o.Output.Wide() {
		header += "\tVPN\tINTERNAL IP\tTOKEN ID\tENROLLED"
	}
	fmt.Fprintln(w, header)
	for _, n := range r.Nodes {
		tokenCol := n.TokenState
		if n.TokenState == site.TokenValid {
			tokenCol = "expires in " + duration.HumanDuration(n.TokenExpires.Sub(now))
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", n.Name, n.Site, n.OverlayIP, n.State, expiry(n.CredentialExpires, now), tokenCol)
		if o.Output.Wide() {
			line += fmt.Sprintf("\t%s\t%s\t%s\t%s", n.VPN, orNone(n.InternalIP), n.TokenID, age(n.EnrolledAt, now)+" ago")
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func expiry(t, now time.Time) string {
	if t.IsZero() {
		return "<none>"
	}
	if !now.Before(t) {
		return "expired"
	}
	return "in " + duration.HumanDuration(t.Sub(now))
}

func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func formatApps(apps map[string]int) string {
	if len(apps) == 0 {
		return "<none>"
	}
	names := make([]string, 0, len(apps))
	for name := range apps {
		names = append(names, name)
	}
	slices.Sort(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		parts = append(parts, fmt.Sprintf("%s=%d", name, apps[name]))
	}
	return strings.Join(parts, ",")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
