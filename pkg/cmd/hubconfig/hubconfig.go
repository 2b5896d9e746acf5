// Package hubconfig implements `kubectl stage hub-config`.
package hubconfig

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
)

var (
	hubConfigLong = templates.LongDesc(`
		Write the VPN hub's server configuration from the cluster's state into a
		directory: for OpenVPN server.conf, the hub credentials, the CRL and one
		client-config-dir entry per enrolled node; for WireGuard hub.conf with
		one peer per enrolled node. Run it on the hub after join and leave.`)

	hubConfigExample = templates.Examples(`
		# Refresh the OpenVPN hub's configuration after a join or leave
		kubectl stage hub-config --dir /etc/openvpn/server/kubectl-stage`)
)

// Options are the flags of `kubectl stage hub-config`.
type Options struct {
	Dir string

	factory  kcmdutil.Factory
	enroller *enroll.Enroller
	genericiooptions.IOStreams
}

// NewCmdHubConfig returns the `hub-config` command.
func NewCmdHubConfig(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{factory: f, IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "hub-config --dir DIR",
		Short:   "Write the VPN hub's configuration (peers, CRL) into a directory",
		Long:    hubConfigLong,
		Example: hubConfigExample,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			if o.Dir == "" {
				return errors.New("--dir is required: the directory the hub reads its configuration from")
			}
			return o.Run(cmd.Context())
		},
	}
	cmd.Flags().StringVarP(&o.Dir, "dir", "d", "", "directory to write the hub configuration into")
	return cmd
}

// Complete builds the client.
func (o *Options) Complete() error {
	var err error
	if o.enroller, err = cmdutil.NewEnroller(o.factory, o.ErrOut); err != nil {
		return err
	}
	return nil
}

// Run writes the files.
func (o *Options) Run(ctx context.Context) error {
	files, err := o.enroller.WriteHubConfig(ctx, o.Dir)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(o.Out, "hub configuration written to %s (%d files)\n", o.Dir, len(files))
	return err
}
