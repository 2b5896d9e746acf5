// Package hubconfig implements `kubectl stage hub-config`.
package hubconfig

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

var (
	hubConfigLong = templates.LongDesc(`
		Write the VPN hub's server configuration from the cluster's state into a
		directory: for OpenVPN server.conf, the hub credentials, the CRL and one
		client-config-dir entry per enrolled node; for WireGuard hub.conf with
		one peer per enrolled node. Run it on the hub after join and leave.

		Then it applies the configuration to the running hub, so that a node
		that left loses its live session at once: OpenVPN checks revocation
		only at a handshake, so the sessions of nodes no longer enrolled are
		killed through the hub's management socket (DIR/management.sock);
		WireGuard's interface gets the new peer list with wg syncconf. When it
		cannot reach the running hub from where it runs, it prints the exact
		commands to run on the hub.`)

	hubConfigExample = templates.Examples(`
		# Refresh the OpenVPN hub's configuration after a join or leave
		kubectl stage hub-config --dir /etc/openvpn/server/kubectl-stage

		# WireGuard hub whose interface is wg-stage
		kubectl stage hub-config --dir /etc/wireguard/kubectl-stage --interface wg-stage`)
)

// Options are the flags of `kubectl stage hub-config`.
type Options struct {
	Dir string
	// Interface is the hub's WireGuard interface.
	Interface string

	enroller *enroll.Enroller
	genericiooptions.IOStreams
}

// NewCmdHubConfig returns the `hub-config` command.
func NewCmdHubConfig(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "hub-config --dir DIR",
		Short:   "Write the VPN hub's configuration (peers, CRL) into a directory",
		Long:    hubConfigLong,
		Example: hubConfigExample,
		Args:    cobra.NoArgs,
		RunE:    cmdutil.RunE(f, o),
	}
	cmd.Flags().StringVarP(&o.Dir, "dir", "d", "", "directory to write the hub configuration into")
	cmd.Flags().StringVar(&o.Interface, "interface", vpn.InterfaceName, "the hub's WireGuard interface, which gets the new peer list (wg syncconf) when it exists here")
	return cmd
}

// Complete builds the client (without contacting the cluster). hub-config
// reads the cluster and writes files, so it has no --dry-run.
func (o *Options) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) error {
	var err error
	o.enroller, err = cmdutil.NewEnroller(f, kcmdutil.DryRunNone, o.ErrOut)
	return err
}

// Validate checks that the directory is given.
func (o *Options) Validate() error {
	if o.Dir == "" {
		return errors.New("--dir is required: the directory the hub reads its configuration from")
	}
	return nil
}

// Run writes the files.
func (o *Options) Run(ctx context.Context) error {
	res, err := o.enroller.UpdateHub(ctx, o.Dir, o.Interface)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Out, "hub configuration written to %s (%d files)\n", o.Dir, len(res.Files))
	if len(res.Cut) > 0 {
		fmt.Fprintf(o.Out, "ended the live sessions of nodes that left: %s\n", strings.Join(res.Cut, ", "))
	}
	if len(res.Pending) > 0 {
		fmt.Fprintf(o.Out, "the running hub was not reachable from here; run on the hub, so that nodes that left lose their live sessions now:\n")
		for _, c := range res.Pending {
			fmt.Fprintf(o.Out, "  %s\n", c)
		}
	}
	return nil
}
