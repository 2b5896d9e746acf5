// Package leave implements `kubectl stage leave`.
package leave

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
)

var (
	leaveLong = templates.LongDesc(`
		Remove a node from the staging cluster: cordon and drain it (evictions
		respect PodDisruptionBudgets), revoke its VPN credentials (OpenVPN: CRL;
		WireGuard: its peer is dropped from the hub), delete its bootstrap token
		and its Node object, and release its overlay IP.

		If a step fails, the command says which and stops; run it again to
		finish. The node's live VPN session goes on until the hub applies the
		revocation: run kubectl stage hub-config --dir HUB_DIR on the hub, which
		ends the session at once.`)

	leaveExample = templates.Examples(`
		# Remove tokyo-1
		kubectl stage leave tokyo-1

		# Give up draining after two minutes; evict unmanaged pods too
		kubectl stage leave tokyo-1 --timeout 2m --force

		# See which pods would be evicted and what would be removed
		kubectl stage leave tokyo-1 --dry-run=client`)
)

// Options are the flags of `kubectl stage leave`.
type Options struct {
	enroll.LeaveOptions

	dryRun   kcmdutil.DryRunStrategy
	enroller *enroll.Enroller
	genericiooptions.IOStreams
}

// NewCmdLeave returns the `leave` command.
func NewCmdLeave(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "leave NODE",
		Short:   "Drain and remove a node, revoke its credentials and release its overlay IP",
		Long:    leaveLong,
		Example: leaveExample,
		RunE:    cmdutil.RunE(f, o),
	}
	cmd.Flags().DurationVar(&o.DrainTimeout, "timeout", 5*time.Minute, "how long to wait for the drain (0: forever)")
	cmd.Flags().BoolVar(&o.Force, "force", false, "also evict pods that no controller manages")
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Complete reads the argument and --dry-run and builds the client (without
// contacting the cluster).
func (o *Options) Complete(f kcmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("exactly one NODE is required: kubectl stage leave NODE")
	}
	o.Node = args[0]
	var err error
	if o.dryRun, err = cmdutil.DryRunStrategy(cmd); err != nil {
		return err
	}
	o.enroller, err = cmdutil.NewEnroller(f, o.dryRun, o.ErrOut)
	return err
}

// Validate checks the node name and the timeout.
func (o *Options) Validate() error {
	if o.DrainTimeout < 0 {
		return fmt.Errorf("--timeout must be 0 (wait forever) or positive, not %s", o.DrainTimeout)
	}
	return enroll.ValidateNodeName(o.Node)
}

// Run removes the node.
func (o *Options) Run(ctx context.Context) error {
	if err := o.enroller.Leave(ctx, o.LeaveOptions); err != nil {
		return err
	}
	if o.dryRun != kcmdutil.DryRunNone {
		_, err := fmt.Fprintf(o.Out, "node %s would leave the staging cluster%s\n", o.Node, dryrun.Suffix(o.dryRun))
		return err
	}
	_, err := fmt.Fprintf(o.Out, "node %s left the staging cluster; cut its live VPN session now: kubectl stage hub-config --dir HUB_DIR (on the hub)\n", o.Node)
	return err
}
