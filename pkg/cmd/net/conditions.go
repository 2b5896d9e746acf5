package net

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// MatrixOptions are the flags of `net` itself.
type MatrixOptions struct {
	PrintFlags *cmdutil.PrintFlags

	client kubernetes.Interface
	store  *site.Store
	genericiooptions.IOStreams
}

func newMatrixOptions(streams genericiooptions.IOStreams) *MatrixOptions {
	return &MatrixOptions{PrintFlags: cmdutil.NewPrintFlags(true), IOStreams: streams}
}

// Complete builds the client (without contacting the cluster).
func (o *MatrixOptions) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) error {
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.client, o.store = client, site.NewStore(client)
	return nil
}

// Validate checks the output flags.
func (o *MatrixOptions) Validate() error { return o.PrintFlags.Validate() }

// Run prints the site x site matrix.
func (o *MatrixOptions) Run(ctx context.Context) error {
	doc, version, err := o.store.NetConditions(ctx)
	if err != nil {
		return err
	}
	records, err := o.store.Nodes(ctx)
	if err != nil {
		return err
	}
	nodes, err := o.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	statuses := map[string]*netcond.Status{}
	for i := range nodes.Items {
		st, err := site.NetStatusOf(&nodes.Items[i])
		if err != nil {
			fmt.Fprintf(o.ErrOut, "warning: %v: ignored; its agent rewrites it within seconds\n", err)
			continue
		}
		if st != nil {
			statuses[nodes.Items[i].Name] = st
		}
	}
	var enrolled []netcond.Node
	for _, r := range records {
		enrolled = append(enrolled, netcond.Node{Name: r.Name, Site: r.Site, OverlayIP: r.OverlayIP})
	}
	matrix := &v1alpha1.NetworkMatrix{ObjectMeta: metav1.ObjectMeta{Name: "network"}, Matrix: netcond.BuildMatrix(doc, version, enrolled, statuses)}
	if !o.PrintFlags.HumanReadable() {
		return o.PrintFlags.Print(matrix, o.Out)
	}
	return printMatrix(o.Out, &matrix.Matrix, o.PrintFlags.Wide())
}

func printMatrix(out io.Writer, m *netcond.Matrix, wide bool) error {
	w := printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "FROM\tTO\tRTT P50/P95 LOSS\tPROBES\tTARGET\tAPPLIED")
	for _, p := range m.Sites {
		probes := "0"
		if p.Measured != nil {
			probes = fmt.Sprint(p.Measured.Sent)
		}
		applied := p.Applied
		if len(p.NotApplied) > 0 {
			applied += " (" + strings.Join(p.NotApplied, "; ") + ")"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", p.From, p.To, p.Measured, probes, p.Target, applied)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !wide {
		return nil
	}
	fmt.Fprintln(out)
	w = printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "FROM-NODE\tFROM-SITE\tTO-NODE\tTO-SITE\tRTT P50/P95 LOSS\tPROBES")
	for _, n := range m.Nodes {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\n", n.From, n.FromSite, n.To, n.ToSite, &n.Measured, n.Measured.Sent)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	// Which agent applies on each node: the chart's pod or the bundle's process.
	fmt.Fprintln(out)
	w = printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "NODE\tSITE\tAPPLIED-BY")
	for _, a := range m.Agents {
		by := a.AppliedBy
		if by == "" {
			by = "<no status: is its agent running?>"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", a.Node, a.Site, by)
	}
	return w.Flush()
}

// changeOptions are shared by the verbs that store a new document: it is
// validated against the sites before anything is written.
type changeOptions struct {
	store *site.Store
	genericiooptions.IOStreams
}

// Complete builds the client (without contacting the cluster).
func (o *changeOptions) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) error {
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.store = site.NewStore(client)
	return nil
}

// Validate has nothing to check: the document is checked against the
// sites before it is stored.
func (o *changeOptions) Validate() error { return nil }

func (o *changeOptions) sites(ctx context.Context) ([]string, error) {
	records, err := o.store.Sites(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(records))
	for _, r := range records {
		names = append(names, r.Name)
	}
	return names, nil
}

// change reads the stored document, lets edit change it, validates the
// result and stores it over the version read.
func (o *changeOptions) change(ctx context.Context, what string, edit func(doc *netcond.Document, sites []string) (*netcond.Document, error)) error {
	sites, err := o.sites(ctx)
	if err != nil {
		return err
	}
	doc, version, err := o.store.NetConditions(ctx)
	if err != nil {
		return err
	}
	if doc, err = edit(doc, sites); err != nil {
		return err
	}
	warnings, err := netcond.Validate(doc, sites)
	if err != nil {
		return fmt.Errorf("the network conditions are refused, nothing was stored:\n%w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(o.ErrOut, "warning: %s\n", w)
	}
	if _, err := o.store.SaveNetConditions(ctx, doc, version); err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "%s: stored; every node's agent applies it within seconds (kubectl stage net shows what each applied)\n", what)
	return nil
}

// ApplyOptions are the flags of `net apply`.
type ApplyOptions struct {
	Filename string
	data     []byte
	changeOptions
}

// Complete reads the file.
func (o *ApplyOptions) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) (err error) {
	if o.Filename == "" {
		return errors.New("give the conditions file with -f FILE (or -f - for stdin); kubectl stage net apply --help shows one")
	}
	if o.Filename == "-" {
		o.data, err = io.ReadAll(o.In)
	} else {
		o.data, err = os.ReadFile(o.Filename)
	}
	if err != nil {
		return err
	}
	return o.changeOptions.Complete(f, nil, nil)
}

// Run stores the file's document in place of the current one.
func (o *ApplyOptions) Run(ctx context.Context) error {
	doc, err := netcond.Parse(o.data)
	if err != nil {
		return fmt.Errorf("%s: %w", o.Filename, err)
	}
	return o.change(ctx, "network conditions from "+o.Filename, func(*netcond.Document, []string) (*netcond.Document, error) { return doc, nil })
}

// PartitionOptions are the flags of `net partition`.
type PartitionOptions struct {
	From  []string
	group []string
	changeOptions
}

// Complete takes the sites.
func (o *PartitionOptions) Complete(f kcmdutil.Factory, cmd *cobra.Command, args []string) error {
	o.group = args
	return o.changeOptions.Complete(f, cmd, args)
}

// Validate checks that the groups are disjoint.
func (o *PartitionOptions) Validate() error {
	for _, s := range o.From {
		if slices.Contains(o.group, s) {
			return fmt.Errorf("site %q is both cut off and in --from: a site cannot be partitioned from itself; remove it from one of them", s)
		}
	}
	return nil
}

// Run adds the partition to the stored conditions.
func (o *PartitionOptions) Run(ctx context.Context) error {
	what := "partition of " + strings.Join(o.group, ", ")
	if len(o.From) > 0 {
		what += " from " + strings.Join(o.From, ", ")
	}
	return o.change(ctx, what, func(doc *netcond.Document, sites []string) (*netcond.Document, error) {
		for _, s := range append(slices.Clone(o.group), o.From...) {
			if !slices.Contains(sites, s) {
				return nil, fmt.Errorf("%q is not a site: use one of %s (kubectl stage sites); nothing was stored", s, strings.Join(sites, ", "))
			}
		}
		if len(o.From) == 0 && len(o.group) == len(sites) {
			return nil, fmt.Errorf("%s names every site, so there is no rest to cut them from: name the other side with --from SITE; nothing was stored", strings.Join(o.group, ", "))
		}
		doc.Partition(o.group, o.From, sites)
		return doc, nil
	})
}

// HealOptions are the flags of `net heal`.
type HealOptions struct{ changeOptions }

// Run ends every partition.
func (o *HealOptions) Run(ctx context.Context) error {
	return o.change(ctx, "every partition healed (other conditions kept)", func(doc *netcond.Document, _ []string) (*netcond.Document, error) {
		doc.Heal()
		return doc, nil
	})
}

// ResetOptions are the flags of `net reset`.
type ResetOptions struct{ changeOptions }

// Run removes the stored conditions.
func (o *ResetOptions) Run(ctx context.Context) error {
	deleted, err := o.store.DeleteNetConditions(ctx)
	if err != nil {
		return err
	}
	if !deleted {
		fmt.Fprintln(o.Out, "no network conditions were stored: nothing to reset")
		return nil
	}
	fmt.Fprintln(o.Out, "network conditions removed: every node's agent removes its rules within seconds")
	return nil
}

const exampleConditions = `
	# Three continents: 80ms by default, Europe-US closer, Asia-US lossy
	# and thin one way.
	cat <<EOF | kubectl stage net apply -f -
	apiVersion: kubectl-stage.io/v1alpha1
	kind: NetworkConditions
	default: {latency: 80ms}
	pairs:
	- {sites: [europe, us], latency: 40ms, jitter: 5ms}
	- {from: asia, to: us, lossPercent: 2, bandwidth: 10mbit}
	EOF`

func newCmdNetConditions(f kcmdutil.Factory, streams genericiooptions.IOStreams) []*cobra.Command {
	apply := &ApplyOptions{changeOptions: changeOptions{IOStreams: streams}}
	applyCmd := &cobra.Command{
		Use:   "apply -f FILE",
		Short: "Store the network conditions between sites, which every node's agent applies",
		Long: templates.LongDesc(`
			Store a NetworkConditions document: a default for every pair of
			sites (sites that join later get it too), and entries per pair of
			sites, both directions (sites: [A, B]) or one (from: A, to: B).
			An entry names only what it changes; a directional entry wins over
			a symmetric one, which wins over the default.

			Fields: latency and jitter (durations such as 80ms; they need the
			kernel's sch_netem, and a node without it reports them as not
			applied), lossPercent (0-100), bandwidth (kbit, mbit or gbit per
			second) and partition (true drops everything between the two
			sites). Traffic to and from the hub is never touched, so nodes
			stay Ready.

			The document is checked against the sites before anything is
			stored: an unknown site, the hub named as a site, a negative
			delay, a loss outside 0-100 or a bandwidth without unit is
			refused with the fix, and nothing is written.`),
		Example: templates.Examples(exampleConditions),
		Args:    cobra.NoArgs,
		RunE:    cmdutil.RunE(f, apply),
	}
	applyCmd.Flags().StringVarP(&apply.Filename, "filename", "f", "", "the NetworkConditions document (- for stdin)")

	partition := &PartitionOptions{changeOptions: changeOptions{IOStreams: streams}}
	partitionCmd := &cobra.Command{
		Use:   "partition SITE [SITE...] [--from SITE...]",
		Short: "Cut sites off from the others (or from --from's) over the overlay; the hub stays reachable",
		Long: templates.LongDesc(`
			Add a partition to the stored network conditions: the sites named
			no longer reach the other sites (or only those given with --from)
			over the overlay, in either direction, while every node still
			reaches the hub, so the cluster keeps seeing it Ready. Sites named
			together still reach each other. The other conditions are kept;
			kubectl stage net heal ends every partition.`),
		Example: templates.Examples(`
			# A network split between Europe and the US.
			kubectl stage net partition europe --from us
			# Asia cut off from everyone else.
			kubectl stage net partition asia`),
		Args: cobra.MinimumNArgs(1),
		RunE: cmdutil.RunE(f, partition),
	}
	partitionCmd.Flags().StringSliceVar(&partition.From, "from", nil, "cut the sites off from these sites only (default: from every other site)")

	heal := &HealOptions{changeOptions{IOStreams: streams}}
	healCmd := &cobra.Command{
		Use:   "heal",
		Short: "End every partition, keeping the other network conditions",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.RunE(f, heal),
	}
	reset := &ResetOptions{changeOptions{IOStreams: streams}}
	resetCmd := &cobra.Command{
		Use:   "reset",
		Short: "Remove every network condition: the agents remove all their rules",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.RunE(f, reset),
	}
	return []*cobra.Command{applyCmd, partitionCmd, healCmd, resetCmd}
}
