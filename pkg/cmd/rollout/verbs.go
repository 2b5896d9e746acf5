package rollout

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

// StatusOptions are the flags of `rollout status APP`.
type StatusOptions struct {
	Watch      bool
	PrintFlags *cmdutil.PrintFlags

	common
}

// NewCmdStatus returns `rollout status`.
func NewCmdStatus(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &StatusOptions{PrintFlags: cmdutil.NewPrintFlags(false), common: common{usage: "rollout status APP", writes: false, IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "status APP",
		Short: "Show the app's rollout: phase, revision, and each site's pods",
		Long: templates.LongDesc(`
			Show the app's rollout: its phase, revision, waves, and each site's
			desired, updated and Ready pods. With --watch, follow it as it goes
			(whoever runs it) until it completes, is paused, or fails; a failed
			rollout exits non-zero.`),
		Example: templates.Examples(`
			kubectl stage rollout status sts/node
			kubectl stage rollout status node -w
			kubectl stage rollout status node -o json`),
		RunE: cmdutil.RunE(f, o),
	}
	cmd.Flags().BoolVarP(&o.Watch, "watch", "w", false, "follow the rollout until it completes, is paused or fails")
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Validate checks the output format.
func (o *StatusOptions) Validate() error { return o.PrintFlags.Validate() }

// Run prints the rollout, once or until it ends.
func (o *StatusOptions) Run(ctx context.Context) error {
	roller, err := o.roller(ctx, o.ref)
	if err != nil {
		return err
	}
	status := roller.Status
	if o.Watch {
		status = roller.Follow
	}
	res, err := status(ctx)
	if o.Watch && res != nil && res.State != nil {
		return report(o.Out, o.PrintFlags, o.dryRun, res, err)
	}
	if err != nil {
		return err
	}
	if res.State == nil {
		_, err := fmt.Fprintf(o.Out, "%s has not been rolled out with kubectl stage rollout\n", o.ref)
		return err
	}
	return report(o.Out, o.PrintFlags, o.dryRun, res, nil)
}

// PauseOptions are the flags of `rollout pause APP`.
type PauseOptions struct {
	common
}

// NewCmdPause returns `rollout pause`.
func NewCmdPause(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &PauseOptions{common: common{usage: "rollout pause APP", writes: true, IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "pause APP",
		Short: "Stop the app's rollout after its current wave",
		Long: templates.LongDesc(`
			Pause the app's rollout. The command running it finishes the wave in
			progress and stops; sites not reached keep their version until
			rollout resume.`),
		RunE: cmdutil.RunE(f, o),
	}
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Validate has nothing to check beyond Complete: pause has no other flags.
func (o *PauseOptions) Validate() error { return nil }

// Run marks the rollout paused.
func (o *PauseOptions) Run(ctx context.Context) error {
	roller, err := o.roller(ctx, o.ref)
	if err != nil {
		return err
	}
	state, err := roller.Pause(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.Out, "%s rollout to revision %d paused (%d of %d sites done); it stops after its current wave%s\n",
		o.ref, state.Revision, len(state.Done), len(state.Desired), dryrun.Suffix(o.dryRun))
	return err
}

// ResumeOptions are the flags of `rollout resume APP`.
type ResumeOptions struct {
	PrintFlags *cmdutil.PrintFlags

	common
}

// NewCmdResume returns `rollout resume`.
func NewCmdResume(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &ResumeOptions{PrintFlags: cmdutil.NewPrintFlags(false), common: common{usage: "rollout resume APP", writes: true, IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "resume APP",
		Short: "Continue a paused, failed or interrupted rollout from where it stopped",
		Long: templates.LongDesc(`
			Continue the app's rollout with the waves and gates it started with.
			A failed site's wave is tried again.`),
		RunE: cmdutil.RunE(f, o),
	}
	o.PrintFlags.AddFlags(cmd)
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Validate checks the output format.
func (o *ResumeOptions) Validate() error { return o.PrintFlags.Validate() }

// Run continues the rollout.
func (o *ResumeOptions) Run(ctx context.Context) error {
	roller, err := o.roller(ctx, o.ref)
	if err != nil {
		return err
	}
	res, err := roller.Resume(ctx)
	return report(o.Out, o.PrintFlags, o.dryRun, res, err)
}

// UndoOptions are the flags of `rollout undo APP`.
type UndoOptions struct {
	PlanFlags
	ToRevision int
	PrintFlags *cmdutil.PrintFlags

	plan rollout.Plan
	common
}

// NewCmdUndo returns `rollout undo`.
func NewCmdUndo(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &UndoOptions{PrintFlags: cmdutil.NewPrintFlags(false), common: common{usage: "rollout undo APP", writes: true, IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "undo APP",
		Short: "Return every site to the previous revision (or --to-revision), in waves",
		Long: templates.LongDesc(`
			Return the app to an earlier revision. Sites that still run it (a
			failed rollout never reached them) are left alone; the others are
			moved back in waves, with the same gates as any rollout.`),
		Example: templates.Examples(`
			kubectl stage rollout undo sts/node
			kubectl stage rollout undo sts/node --to-revision 2 --waves rest --max-sites-at-once 0`),
		RunE: cmdutil.RunE(f, o),
	}
	cmd.Flags().IntVar(&o.ToRevision, "to-revision", 0, "revision to return to (0: the one before the current)")
	o.PlanFlags.AddFlags(cmd)
	o.PrintFlags.AddFlags(cmd)
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Validate checks the revision, the output format and the plan.
func (o *UndoOptions) Validate() error {
	if o.ToRevision < 0 {
		return fmt.Errorf("--to-revision must be a revision number, or 0 for the one before the current, not %d", o.ToRevision)
	}
	if err := o.PrintFlags.Validate(); err != nil {
		return err
	}
	var err error
	o.plan, err = o.PlanFlags.Plan()
	return err
}

// Run moves the sites back.
func (o *UndoOptions) Run(ctx context.Context) error {
	roller, err := o.roller(ctx, o.ref)
	if err != nil {
		return err
	}
	res, err := roller.Undo(ctx, o.ToRevision, o.plan)
	if err == nil && res.NoChange {
		_, err = fmt.Fprintf(o.Out, "%s already runs revision %d everywhere\n", o.ref, o.ToRevision)
		return err
	}
	return report(o.Out, o.PrintFlags, o.dryRun, res, err)
}

// HistoryOptions are the flags of `rollout history APP`.
type HistoryOptions struct {
	// Revision is --revision: the one revision to print (0: all).
	Revision   int
	PrintFlags *cmdutil.PrintFlags

	common
}

// NewCmdHistory returns `rollout history`.
func NewCmdHistory(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &HistoryOptions{PrintFlags: cmdutil.NewPrintFlags(false), common: common{usage: "rollout history APP", writes: false, IOStreams: streams}}
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "List the app's revisions: cause, images, result",
		Example: templates.Examples(`
			kubectl stage rollout history sts/node
			kubectl stage rollout history sts/node --revision 2`),
		RunE: cmdutil.RunE(f, o),
	}
	cmd.Flags().IntVar(&o.Revision, "revision", 0, "print this revision's pod template")
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Validate checks the revision and the output format.
func (o *HistoryOptions) Validate() error {
	if o.Revision < 0 {
		return fmt.Errorf("--revision must be a revision number (see kubectl stage rollout history %s), not %d", o.ref, o.Revision)
	}
	return o.PrintFlags.Validate()
}

// Run prints the history, or one revision.
func (o *HistoryOptions) Run(ctx context.Context) error {
	roller, err := o.roller(ctx, o.ref)
	if err != nil {
		return err
	}
	_, history, err := roller.State(ctx)
	if err != nil {
		return err
	}
	if o.Revision == 0 {
		if !o.PrintFlags.HumanReadable() {
			return o.PrintFlags.Print(history.Objects(o.ref), o.Out)
		}
		return printHistory(o.Out, history, time.Now())
	}
	rev, ok := history.Find(o.Revision)
	if !ok {
		return fmt.Errorf("revision %d is not in the history of %s; see kubectl stage rollout history %s", o.Revision, o.ref, o.ref)
	}
	if !o.PrintFlags.HumanReadable() {
		obj := rev.Object(o.ref)
		return o.PrintFlags.Print(&obj, o.Out)
	}
	data, err := yaml.Marshal(rev.Spec)
	if err != nil {
		return err
	}
	_, err = o.Out.Write(data)
	return err
}

func printHistory(out io.Writer, history rollout.History, now time.Time) error {
	w := printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "REVISION\tRESULT\tAGE\tIMAGES\tCAUSE")
	for _, rev := range history {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", rev.Number, rev.Result,
			duration.HumanDuration(now.Sub(rev.Time.Time)), rev.Images, rev.Cause)
	}
	return w.Flush()
}

// printSummary prints the rollout's phase and one row per site; suffix
// marks a dry run.
func printSummary(out io.Writer, r *v1alpha1.Rollout, suffix string) error {
	ref := rollout.Ref{Kind: r.Spec.Workload.Kind, Name: r.Name, Namespace: r.Namespace}
	switch r.Status.Phase {
	case v1alpha1.RolloutUnchanged:
		_, err := fmt.Fprintf(out, "%s already runs that template; nothing to roll out%s\n", ref, suffix)
		return err
	case "":
		return nil
	}
	fmt.Fprintf(out, "%s revision %d: %s", ref, r.Spec.Revision, r.Status.Phase)
	if r.Status.FailedSite != "" {
		fmt.Fprintf(out, " at site %s: %s", r.Status.FailedSite, r.Status.Message)
	}
	if r.Status.Cause != "" {
		fmt.Fprintf(out, " (%s)", r.Status.Cause)
	}
	fmt.Fprintln(out, suffix)
	w := printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "SITE\tWAVE\tDESIRED\tUPDATED\tREADY\tRESULT")
	for _, site := range r.Status.Sites {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\n", site.Name, site.Wave, site.Desired, site.Updated, site.Ready, site.Result)
	}
	return w.Flush()
}
