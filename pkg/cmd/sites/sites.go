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
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// view is one side of the report: the objects it prints through -o, and
// its table.
type view struct {
	object func(r *site.Report) runtime.Object
	table  func(o *Options, r *site.Report, w io.Writer) error
	// paths: the view shows the overlay's shape (the paths between sites).
	paths bool
}

var (
	sitesView = view{object: func(r *site.Report) runtime.Object { return &r.Sites }, table: printSites, paths: true}
	nodesView = view{object: func(r *site.Report) runtime.Object { return &r.Nodes }, table: printNodes}
)

// Options are the flags of `sites` and `status`.
type Options struct {
	PrintFlags *cmdutil.PrintFlags

	view  view
	store *site.Store
	now   func() time.Time
	genericiooptions.IOStreams
}

// NewCmdSites returns the `sites` command.
func NewCmdSites(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, streams, sitesView, &cobra.Command{
		Use:   "sites",
		Short: "List the sites with their nodes, readiness and the peers running there",
		Long: templates.LongDesc(`
			List the staging cluster's sites: how many nodes each has, how many are
			Ready, and how many pods of each app run there.`),
		Example: templates.Examples(`
			kubectl stage sites
			kubectl stage sites -o wide
			kubectl stage sites -o json
			kubectl stage sites -o jsonpath='{.items[*].metadata.name}'`),
	})
}

// NewCmdStatus returns the `status` command.
func NewCmdStatus(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	return newCmd(f, streams, nodesView, &cobra.Command{
		Use:   "status",
		Short: "Show every enrolled node: site, overlay IP, Ready state, credential and token expiry (-o wide: also its endpoint)",
		Long: templates.LongDesc(`
			Show what is enrolled where: each node's site, overlay IP, whether it
			has joined and is Ready, and when its VPN credentials and bootstrap
			token expire.`),
		Example: templates.Examples(`
			kubectl stage status
			kubectl stage status -o wide
			kubectl stage status -o yaml
			kubectl stage status -o name`),
	})
}

func newCmd(f kcmdutil.Factory, streams genericiooptions.IOStreams, v view, cmd *cobra.Command) *cobra.Command {
	o := &Options{PrintFlags: cmdutil.NewPrintFlags(true), view: v, now: time.Now, IOStreams: streams}
	cmd.Args = cobra.NoArgs
	cmd.RunE = cmdutil.RunE(f, o)
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete builds the client (without contacting the cluster).
func (o *Options) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) error {
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.store = site.NewStore(client)
	return nil
}

// Validate checks the output flags.
func (o *Options) Validate() error { return o.PrintFlags.Validate() }

// Run prints the report.
func (o *Options) Run(ctx context.Context) error {
	if _, err := o.store.Config(ctx); err != nil {
		return err
	}
	report, err := o.store.BuildReport(ctx, o.now())
	if err != nil {
		return err
	}
	if o.view.paths {
		paths, _, err := o.store.Paths(ctx)
		if err != nil {
			return err
		}
		site.AddSitePaths(&report.Sites, paths)
		report.Shape = paths.Shape
	}
	if !o.PrintFlags.HumanReadable() {
		return o.PrintFlags.Print(o.view.object(report), o.Out)
	}
	w := printers.GetNewTabWriter(o.Out)
	if err := o.view.table(o, report, w); err != nil {
		return err
	}
	return w.Flush()
}

func printSites(o *Options, r *site.Report, w io.Writer) error {
	if len(r.Sites.Items) == 0 {
		_, err := fmt.Fprintln(o.ErrOut, "No sites yet: enroll a node with kubectl stage join SITE --node NAME")
		return err
	}
	header := "SITE\tNODES\tREADY\tPODS\tAGE"
	if o.PrintFlags.Wide() {
		header += "\tAPPS\tPATHS"
	}
	fmt.Fprintln(w, header)
	for _, s := range r.Sites.Items {
		line := fmt.Sprintf("%s\t%d\t%d/%d\t%d\t%s", s.Name, s.Status.Nodes, s.Status.Ready, s.Status.Nodes, s.Status.Pods, age(s.CreationTimestamp.Time, o.now()))
		if o.PrintFlags.Wide() {
			line += "\t" + formatApps(s.Status.Apps) + "\t" + formatPaths(r.Shape, s.Status.Paths)
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

func printNodes(o *Options, r *site.Report, w io.Writer) error {
	if len(r.Nodes.Items) == 0 {
		_, err := fmt.Fprintln(o.ErrOut, "No nodes enrolled: enroll one with kubectl stage join SITE --node NAME")
		return err
	}
	now := o.now()
	header := "NODE\tSITE\tOVERLAY IP\tSTATUS\tCREDENTIAL EXPIRES\tTOKEN"
	if o.PrintFlags.Wide() {
		header += "\tVPN\tINTERNAL IP\tTOKEN ID\tENROLLED\tENDPOINT"
	}
	fmt.Fprintln(w, header)
	for _, n := range r.Nodes.Items {
		tokenCol := n.Status.TokenState
		if tokenCol == v1alpha1.TokenValid {
			tokenCol = "expires in " + duration.HumanDuration(n.Status.TokenExpires.Sub(now))
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", n.Name, n.Spec.Site, n.Spec.OverlayIP, n.Status.State, expiry(n.Status.CredentialExpires.Time, now), tokenCol)
		if o.PrintFlags.Wide() {
			line += fmt.Sprintf("\t%s\t%s\t%s\t%s\t%s", n.Spec.VPN, orNone(n.Status.InternalIP), n.Spec.TokenID, age(n.CreationTimestamp.Time, now)+" ago", endpoint(n.Spec))
		}
		fmt.Fprintln(w, line)
	}
	return nil
}

// endpoint says where other sites reach the node, which decides its paths
// (kubectl stage net paths lists them per pair).
func endpoint(spec v1alpha1.EnrolledNodeSpec) string {
	switch {
	case spec.VPN != "wireguard":
		return "<star: via hub>"
	case spec.Endpoint == "":
		return "<none: via hub>"
	case spec.RelayOnly:
		return spec.Endpoint + " (relay-only: via hub)"
	}
	return spec.Endpoint
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

// formatPaths lists the other sites by how packets reach them, e.g.
// "direct=osaka,tokyo relayed=berlin"; a star says so once.
func formatPaths(shape string, paths map[string]string) string {
	if len(paths) == 0 {
		return "<none>"
	}
	if shape == "star" {
		return "<star: via hub>"
	}
	byKind := map[string][]string{}
	for other, kind := range paths {
		byKind[kind] = append(byKind[kind], other)
	}
	var parts []string
	for _, kind := range []string{"direct", "relayed", v1alpha1.PathMixed} {
		if sites := byKind[kind]; len(sites) > 0 {
			slices.Sort(sites)
			parts = append(parts, kind+"="+strings.Join(sites, ","))
		}
	}
	return strings.Join(parts, " ")
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
