// Package agent implements the kubectl-stage-agent command.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/agent"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

var agentLong = templates.LongDesc(`
	The kubectl-stage node agent. It watches the enrolled nodes (ConfigMaps
	in kubectl-stage-system; it reads no Secret) and keeps this machine's
	WireGuard interface's peers as they say, within seconds of a join or a
	leave: the hub for the whole overlay, and every node both sides can
	reach directly for its own address. Everything else goes through the hub.

	With --hub it keeps the hub's interface instead: one peer per enrolled
	node, and publishes where it sees each node's packets come from (the
	ConfigMap kubectl-stage-observed-endpoints), which is where nodes that
	joined with --endpoint auto are reached. A node's interface only ever
	carries keys the cluster enrolled, each for its own node's address.`)

// Options are the agent's flags.
type Options struct {
	Kubeconfig string
	Node       string
	Hub        bool
	Interface  string
	Resync     time.Duration
	Observe    time.Duration

	client kubernetes.Interface
	genericiooptions.IOStreams
}

// NewCmdAgent returns the agent's root command.
func NewCmdAgent(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams, Interface: vpn.InterfaceName, Resync: 30 * time.Second, Observe: 2 * time.Second, Node: os.Getenv("NODE_NAME")}
	cmd := &cobra.Command{
		Use:           "kubectl-stage-agent --node NAME | --hub",
		Short:         "Keep this machine's WireGuard peers as the enrolled nodes say",
		Long:          agentLong,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(cmd); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	flags := cmd.Flags()
	flags.StringVar(&o.Kubeconfig, "kubeconfig", o.Kubeconfig, "kubeconfig file (the join bundle passes the kubelet's, /etc/kubernetes/kubelet.conf; in a pod: its service account)")
	flags.StringVar(&o.Node, "node", o.Node, "the node this agent runs on (default $NODE_NAME)")
	flags.BoolVar(&o.Hub, "hub", false, "keep the hub's interface: one peer per enrolled node")
	flags.StringVar(&o.Interface, "interface", o.Interface, "the WireGuard interface")
	flags.DurationVar(&o.Resync, "resync", o.Resync, "reconcile this often even without a change (repairs peers changed by hand)")
	flags.DurationVar(&o.Observe, "observe", o.Observe, "with --hub: how often to read where each node's packets come from and publish the changes (nodes joined with --endpoint auto are reached there)")
	return cmd
}

// Complete builds the client (without contacting the cluster).
func (o *Options) Complete(cmd *cobra.Command) error {
	if o.Hub && cmd.Flags().Changed("node") {
		return errors.New("--hub and --node exclude each other: the hub is not an enrolled node")
	}
	if o.Hub {
		o.Node = ""
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
	if err != nil {
		return fmt.Errorf("no cluster credentials: %w; give --kubeconfig (on a node that joined: /etc/kubernetes/kubelet.conf)", err)
	}
	cfg.UserAgent = "kubectl-stage-agent"
	o.client, err = kubernetes.NewForConfig(cfg)
	return err
}

// Validate checks the flags.
func (o *Options) Validate() error {
	if !o.Hub && o.Node == "" {
		return agent.ErrNoNode
	}
	if !o.Hub {
		if err := enroll.ValidateNodeName(o.Node); err != nil {
			return fmt.Errorf("--node: %w", err)
		}
	}
	if err := vpn.ValidateInterfaceName(o.Interface); err != nil {
		return fmt.Errorf("--interface: %w", err)
	}
	if o.Resync < time.Second {
		return fmt.Errorf("--resync %s: at least 1s", o.Resync)
	}
	if o.Hub && o.Observe < 500*time.Millisecond {
		return fmt.Errorf("--observe %s: at least 500ms (each look runs wg show)", o.Observe)
	}
	return nil
}

// Run reconciles until the process is stopped.
func (o *Options) Run(ctx context.Context) error {
	m := &agent.Mesh{Client: o.client, Node: o.Node, Hub: o.Hub, Resync: o.Resync, Observe: o.Observe, Log: o.ErrOut,
		Applier: &mesh.Applier{Device: o.Interface}}
	who := "node " + o.Node
	if o.Hub {
		who = "the hub"
	}
	fmt.Fprintf(o.ErrOut, "kubectl-stage-agent: keeping the WireGuard peers of %s on %s\n", who, o.Interface)
	return m.Run(ctx)
}
