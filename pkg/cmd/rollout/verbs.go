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
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

// verbOptions serve the subcommands that act on a stored rollout.
type verbOptions struct {
	PlanFlags
	ToRevision int
	PrintFlags *cmdutil.PrintFlags

	verb   string
	ref    rollout.Ref
	roller *rollout.Roller
	run    func(ctx context.Context, o *verbOptions) error
	common
}

func newVerb(f kcmdutil.Factory, streams genericiooptions.IOStreams, verb string, run func(context.Context, *verbOptions) error, cmd *cobra.Command) (*cobra.Command, *verbOptions) {
	o := &verbOptions{verb: verb, run: run, PrintFlags: cmdutil.NewPrintFlags(false), common: common{factory: f, IOStreams: streams}}
	cmd.Use = verb + " APP"
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var err error
		if o.ref, err = o.complete(args, verb); err != nil {
			return err
		}
		if err := o.PrintFlags.Validate(); err != nil {
			return err
		}
		if o.roller, err = rollout.New(cmd.Context(), o.client, o.ref, o.ErrOut); err != nil {
			return err
		}
		return o.run(cmd.Context(), o)
	}
	return cmd, o
}

func newCmdStatus(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	var watch bool
	cmd, o := newVerb(f, streams, "status", func(ctx context.Context, o *verbOptions) error {
		status := o.roller.Status
		if watch {
			status = o.roller.Follow
		}
		res, err := status(ctx)
		if watch && res != nil && res.State != nil {
			return report(o.Out, o.PrintFlags, res, err)
		}
		if err != nil {
			return err
		}
		if res.State == nil {
			_, err := fmt.Fprintf(o.Out, "%s has not been rolled out with kubectl stage rollout\n", o.ref)
			return err
		}
		return report(o.Out, o.PrintFlags, res, nil)
	}, &cobra.Command{
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
	})
	cmd.Flags().BoolVarP(&watch, "watch", "w", false, "follow the rollout until it completes, is paused or fails")
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

func newCmdPause(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd, _ := newVerb(f, streams, "pause", func(ctx context.Context, o *verbOptions) error {
		state, err := o.roller.Pause(ctx)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s rollout to revision %d paused (%d of %d sites done); it stops after its current wave\n",
			o.ref, state.Revision, len(state.Done), len(state.Desired))
		return err
	}, &cobra.Command{
		Short: "Stop the app's rollout after its current wave",
		Long: templates.LongDesc(`
			Pause the app's rollout. The command running it finishes the wave in
			progress and stops; sites not reached keep their version until
			rollout resume.`),
	})
	return cmd
}

func newCmdResume(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd, o := newVerb(f, streams, "resume", func(ctx context.Context, o *verbOptions) error {
		res, err := o.roller.Resume(ctx)
		return report(o.Out, o.PrintFlags, res, err)
	}, &cobra.Command{
		Short: "Continue a paused, failed or interrupted rollout from where it stopped",
		Long: templates.LongDesc(`
			Continue the app's rollout with the waves and gates it started with.
			A failed site's wave is tried again.`),
	})
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

func newCmdUndo(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd, o := newVerb(f, streams, "undo", func(ctx context.Context, o *verbOptions) error {
		plan, err := o.Plan()
		if err != nil {
			return err
		}
		res, err := o.roller.Undo(ctx, o.ToRevision, plan)
		if err == nil && res.NoChange {
			_, err = fmt.Fprintf(o.Out, "%s already runs revision %d everywhere\n", o.ref, o.ToRevision)
			return err
		}
		return report(o.Out, o.PrintFlags, res, err)
	}, &cobra.Command{
		Short: "Return every site to the previous revision (or --to-revision), in waves",
		Long: templates.LongDesc(`
			Return the app to an earlier revision. Sites that still run it (a
			failed rollout never reached them) are left alone; the others are
			moved back in waves, with the same gates as any rollout.`),
		Example: templates.Examples(`
			kubectl stage rollout undo sts/node
			kubectl stage rollout undo sts/node --to-revision 2 --waves rest --max-sites-at-once 0`),
	})
	cmd.Flags().IntVar(&o.ToRevision, "to-revision", 0, "revision to return to (0: the one before the current)")
	o.PlanFlags.AddFlags(cmd)
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

func newCmdHistory(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	cmd, o := newVerb(f, streams, "history", func(ctx context.Context, o *verbOptions) error {
		_, history, err := o.roller.State(ctx)
		if err != nil {
			return err
		}
		if o.ToRevision > 0 {
			rev, ok := history.Find(o.ToRevision)
			if !ok {
				return fmt.Errorf("revision %d is not in the history of %s", o.ToRevision, o.ref)
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
		if !o.PrintFlags.HumanReadable() {
			return o.PrintFlags.Print(history.Objects(o.ref), o.Out)
		}
		return printHistory(o.Out, history, time.Now())
	}, &cobra.Command{
		Short: "List the app's revisions: cause, images, result",
		Example: templates.Examples(`
			kubectl stage rollout history sts/node
			kubectl stage rollout history sts/node --revision 2`),
	})
	cmd.Flags().IntVar(&o.ToRevision, "revision", 0, "print this revision's pod template")
	o.PrintFlags.AddFlags(cmd)
	return cmd
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

// printSummary prints the rollout's phase and one row per site.
func printSummary(out io.Writer, r *v1alpha1.Rollout) error {
	ref := rollout.Ref{Kind: r.Spec.Workload.Kind, Name: r.Name, Namespace: r.Namespace}
	switch r.Status.Phase {
	case v1alpha1.RolloutUnchanged:
		_, err := fmt.Fprintf(out, "%s already runs that template; nothing to roll out\n", ref)
		return err
	case "":
		return nil
	}
	fmt.Fprintf(out, "%s revision %d: %s", ref, r.Spec.Revision, r.Status.Phase)
	if r.Status.FailedSite != "" {
		fmt.Fprintf(out, " at site %s: %s", r.Status.FailedSite, r.Status.Message)
	}
	fmt.Fprintln(out)
	w := printers.GetNewTabWriter(out)
	fmt.Fprintln(w, "SITE\tWAVE\tDESIRED\tUPDATED\tREADY\tRESULT")
	for _, site := range r.Status.Sites {
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%d\t%s\n", site.Name, site.Wave, site.Desired, site.Updated, site.Ready, site.Result)
	}
	return w.Flush()
}
