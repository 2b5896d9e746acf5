// Package join implements `kubectl stage join`.
package join

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/secretfile"
)

var (
	joinLong = templates.LongDesc(`
		Enroll a new node at a site: allocate its overlay IP, issue its VPN
		credentials, create a kubeadm bootstrap token and write a join bundle,
		a single script that a person at the site runs as root to bring the VPN
		up, check the overlay and kubeadm join the cluster over it. The kubelet
		registers with its overlay IP as node IP and the site label set.

		The bundle (mode 0600) holds the node's private key and the token; they
		are never printed unless --print-join-command is given. The site is
		created on its first join.`)

	joinExample = templates.Examples(`
		# Enroll node tokyo-1 at site tokyo; writes ./tokyo-1.join.sh
		kubectl stage join tokyo --node tokyo-1

		# See what would happen, changing nothing
		kubectl stage join tokyo --node tokyo-2 --dry-run=client

		# Have the API server check every write of the enrollment, persisting none
		kubectl stage join tokyo --node tokyo-2 --dry-run=server

		# A WireGuard node other sites reach directly at 203.0.113.7, UDP 51820
		kubectl stage join tokyo --node tokyo-3 --endpoint 203.0.113.7:51820

		# A token that lives one hour, and print the kubeadm join command too
		kubectl stage join osaka --node osaka-1 --token-ttl 1h --print-join-command`)
)

// Options are the flags of `kubectl stage join`.
type Options struct {
	enroll.JoinOptions
	BundlePath       string
	PrintJoinCommand bool
	PrintFlags       *cmdutil.PrintFlags

	dryRun   kcmdutil.DryRunStrategy
	enroller *enroll.Enroller
	genericiooptions.IOStreams
}

// NewCmdJoin returns the `join` command.
func NewCmdJoin(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{PrintFlags: cmdutil.NewPrintFlags(false), IOStreams: streams}
	cmd := &cobra.Command{
		Use:     "join SITE --node NAME",
		Short:   "Enroll a node at a site and write its join bundle",
		Long:    joinLong,
		Example: joinExample,
		RunE:    cmdutil.RunE(f, o),
	}
	flags := cmd.Flags()
	flags.StringVar(&o.Node, "node", o.Node, "name of the new node (DNS-1123); also its kubelet's node name")
	flags.StringVarP(&o.BundlePath, "bundle", "f", o.BundlePath, "where to write the join bundle (default ./NODE.join.sh)")
	flags.DurationVar(&o.TokenTTL, "token-ttl", 0, "lifetime of the bootstrap token (default: the one set by init)")
	flags.BoolVar(&o.PrintJoinCommand, "print-join-command", false, "also print the kubeadm join command (it contains the token)")
	flags.StringVar(&o.Endpoint, "endpoint", o.Endpoint, "WireGuard: the underlay HOST:PORT where other sites reach this node directly (its WireGuard listens on PORT); auto: where the hub sees its packets come from (a public address the node does not know, or one that changes); leave it out behind NAT, where the hub relays")
	flags.BoolVar(&o.RelayOnly, "relay-only", false, "WireGuard: keep every path of this node through the hub, even with --endpoint")
	o.PrintFlags.AddFlags(cmd)
	cmdutil.AddDryRunFlag(cmd)
	return cmd
}

// Complete reads the arguments and --dry-run and builds the client
// (without contacting the cluster).
func (o *Options) Complete(f kcmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("exactly one SITE is required: kubectl stage join SITE --node NAME")
	}
	o.Site = args[0]
	if o.BundlePath == "" && o.Node != "" {
		o.BundlePath = o.Node + ".join.sh"
	}
	var err error
	if o.dryRun, err = cmdutil.DryRunStrategy(cmd); err != nil {
		return err
	}
	o.enroller, err = cmdutil.NewEnroller(f, o.dryRun, o.ErrOut)
	return err
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if o.Node == "" {
		return errors.New("--node is required: the name the new node gets, such as " + o.Site + "-1")
	}
	if o.TokenTTL < 0 {
		return errors.New("--token-ttl must be positive")
	}
	if err := enroll.ValidateSiteName(o.Site); err != nil {
		return err
	}
	if err := enroll.ValidateNodeName(o.Node); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	return o.PrintFlags.Validate()
}

// Run enrolls the node and writes the bundle; if the bundle cannot be
// written, the enrollment is undone. A dry run writes no bundle: its token
// and credentials are in no cluster.
func (o *Options) Run(ctx context.Context) error {
	res, err := o.enroller.Join(ctx, o.JoinOptions)
	if err != nil {
		return err
	}
	if o.dryRun == kcmdutil.DryRunNone {
		if err := secretfile.Write(o.BundlePath, res.Script); err != nil {
			if undoErr := o.enroller.Undo(context.WithoutCancel(ctx), res); undoErr != nil {
				return fmt.Errorf("%w; undoing the enrollment also failed: %v", err, undoErr)
			}
			return fmt.Errorf("%w; the enrollment was undone", err)
		}
	}
	if !o.PrintFlags.HumanReadable() {
		node := res.Record.Object()
		return o.PrintFlags.Print(&node, o.Out)
	}
	if o.dryRun != kcmdutil.DryRunNone {
		return nil
	}
	abs, _ := filepath.Abs(o.BundlePath)
	fmt.Fprintf(o.Out, "node %s enrolled at site %s with overlay IP %s; token %s expires %s\n",
		res.Record.Name, res.Record.Site, res.Record.OverlayIP, res.Record.TokenID, res.Record.TokenExpires.Format(time.RFC3339))
	fmt.Fprintf(o.Out, "join bundle: %s (0600, holds secrets). At the site, as root: bash %s\n", abs, filepath.Base(o.BundlePath))
	fmt.Fprintf(o.Out, "then apply the new peer on the hub: kubectl stage hub-config --dir HUB_DIR\n")
	if o.PrintJoinCommand {
		b := res.Bundle
		fmt.Fprintf(o.Out, "kubeadm join %s --token %s --discovery-token-ca-cert-hash %s --node-name %s  # kubelet: --node-ip=%s --node-labels=%s\n",
			b.APIServerEndpoint, b.Token, b.CACertHash, b.Node, b.OverlayIP, b.NodeLabels())
	}
	return nil
}
