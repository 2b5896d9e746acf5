// Package agent implements the kubectl-stage-agent command.
package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	carries keys the cluster enrolled, each for its own node's address.

	On a node it also applies the network conditions stored by
	` + "`kubectl stage net apply`" + ` (ConfigMap kubectl-stage-net-conditions) to the
	tunnel device, per remote site: loss and partitions with nftables (table
	inet kubectl-stage-net), bandwidth and latency with tc (root qdisc
	5354:), never touching traffic to or from the hub. It removes those
	rules when it starts, when the conditions are cleared and when it stops.
	It measures round trips to every other node with its own UDP echo
	(port 51830 on the overlay) and publishes the figures and what it
	applied in the annotation kubectl-stage.io/net-status of its Node.

	On an OpenVPN overlay (a star: the hub's OpenVPN routes every path)
	there are no peers to keep: the agent says so once, and only applies
	and measures the network conditions on the tunnel device.

	One agent per machine applies the network conditions. The Helm chart's
	DaemonSet (netAgent.enabled) runs agents with --mesh=false
	--net-conditions-priority=preferred; the join bundle's agent hands the
	conditions over to such a pod while it runs on the machine, and takes
	them back when it stops (file locks in --lock-dir, which the pod mounts
	from the host).`)

// Options are the agent's flags.
type Options struct {
	Kubeconfig string
	Node       string
	Hub        bool
	Interface  string
	Resync     time.Duration
	Observe    time.Duration
	// NetConditions applies the network conditions and measures the overlay.
	NetConditions bool
	ProbeInterval time.Duration
	ProbePeers    int
	PublishEvery  time.Duration
	// MetricsAddr serves the figures per site pair for Prometheus; "" is off.
	MetricsAddr string
	// Mesh keeps the WireGuard peers (off in the chart's agent pods).
	Mesh bool
	// Priority and LockDir decide which agent of the machine applies the
	// network conditions.
	Priority agent.Priority
	LockDir  string

	client kubernetes.Interface
	genericiooptions.IOStreams
}

// NewOptions are the agent's defaults: on a node, both the mesh and the
// network conditions, yielding the latter to an agent pod.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{IOStreams: streams, Interface: vpn.InterfaceName, Resync: 30 * time.Second, Observe: 2 * time.Second, Node: os.Getenv("NODE_NAME"),
		NetConditions: true, Mesh: true, Priority: agent.Fallback, LockDir: "/run/kubectl-stage", ProbeInterval: time.Second, ProbePeers: 10, PublishEvery: 5 * time.Second}
}

// NewCmdAgent returns the agent's root command.
func NewCmdAgent(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	cmd := &cobra.Command{
		Use:           "kubectl-stage-agent --node NAME | --hub",
		Short:         "Keep this machine's WireGuard peers as the enrolled nodes say, and apply and measure the network conditions",
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
	flags.StringVar(&o.Interface, "interface", o.Interface, "the tunnel device (the bundle's; WireGuard or OpenVPN)")
	flags.DurationVar(&o.Resync, "resync", o.Resync, "reconcile this often even without a change (repairs peers changed by hand)")
	flags.DurationVar(&o.Observe, "observe", o.Observe, "with --hub: how often to read where each node's packets come from and publish the changes (nodes joined with --endpoint auto are reached there)")
	flags.BoolVar(&o.NetConditions, "net-conditions", o.NetConditions, "on a node: apply the cluster's network conditions to the interface and measure round trips to the other nodes")
	flags.DurationVar(&o.ProbeInterval, "probe-interval", o.ProbeInterval, "send a round of round-trip probes this often")
	flags.IntVar(&o.ProbePeers, "probe-peers", o.ProbePeers, "probe at most this many nodes per round (round robin over all of them): probes per second = probe-peers / probe-interval")
	flags.DurationVar(&o.PublishEvery, "publish-every", o.PublishEvery, "write the measured figures on the Node at most this often")
	flags.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve the measured figures per site pair as Prometheus metrics at HOST:PORT/metrics (off by default)")
	flags.BoolVar(&o.Mesh, "mesh", o.Mesh, "keep this machine's WireGuard peers (the join bundle's agent does; the chart's agent pods run with --mesh=false)")
	flags.StringVar((*string)(&o.Priority), "net-conditions-priority", string(o.Priority), "which of the machine's agents applies the network conditions: fallback (the join bundle's) yields to preferred (the chart's agent pod) while one runs")
	flags.StringVar(&o.LockDir, "lock-dir", o.LockDir, "the directory on this machine where its agents agree which applies the network conditions (the agent pod mounts it from the host)")
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
	if !o.Mesh && (o.Hub || !o.NetConditions) {
		return errors.New("--mesh=false leaves nothing to do: on a node keep --net-conditions, and the hub's agent always keeps its mesh")
	}
	if o.Hub || !o.NetConditions {
		return nil
	}
	if o.Priority != agent.Fallback && o.Priority != agent.Preferred {
		return fmt.Errorf("--net-conditions-priority %q: use %s (the join bundle's agent) or %s (the chart's agent pod)", o.Priority, agent.Fallback, agent.Preferred)
	}
	if !filepath.IsAbs(o.LockDir) {
		return fmt.Errorf("--lock-dir %q: give an absolute path that every agent on this machine sees, such as /run/kubectl-stage", o.LockDir)
	}
	if o.ProbeInterval < 100*time.Millisecond || o.ProbePeers < 1 || o.ProbePeers > 100 {
		return fmt.Errorf("--probe-interval %s, --probe-peers %d: at least 100ms and between 1 and 100 peers (the probes must stay a low rate)", o.ProbeInterval, o.ProbePeers)
	}
	if o.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(o.MetricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr %q is not HOST:PORT (such as 127.0.0.1:9101): %v", o.MetricsAddr, err)
		}
	}
	if o.PublishEvery < time.Second {
		return fmt.Errorf("--publish-every %s: at least 1s (every write goes to the API server)", o.PublishEvery)
	}
	return nil
}

// Run reconciles until the process is stopped.
func (o *Options) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	// One watch for every loop; it stops with ctx, before Shutdown waits.
	records := agent.NewRecords(o.client, o.Resync)
	records.Start(ctx)
	defer func() {
		cancel()
		records.Shutdown()
	}()
	who := "node " + o.Node
	if o.Hub {
		who = "the hub"
	}
	// Whether there are WireGuard peers to keep, the staging configuration
	// says: the mesh loop logs it once it has read it.
	fmt.Fprintf(o.ErrOut, "kubectl-stage-agent: %s on %s\n", who, o.Interface)
	var loops []func(context.Context) error
	if o.Mesh {
		m := &agent.Mesh{Client: o.client, Records: records, Node: o.Node, Hub: o.Hub, Resync: o.Resync, Observe: o.Observe, Log: o.ErrOut,
			Applier: &mesh.Applier{Device: o.Interface}}
		loops = append(loops, m.Run)
	}
	if !o.Hub && o.NetConditions {
		n := &agent.NetConditions{Client: o.client, Records: records, Node: o.Node, Resync: o.Resync, Log: o.ErrOut, PublishEvery: o.PublishEvery,
			Identity: identity(),
			Rules:    &agent.RuleApplier{Device: o.Interface},
			Prober:   &agent.Prober{Interval: o.ProbeInterval, PerRound: o.ProbePeers, Window: 30, Timeout: 2 * time.Second}}
		if o.MetricsAddr != "" {
			if err := serveMetrics(ctx, o.MetricsAddr, n); err != nil {
				return err
			}
			fmt.Fprintf(o.ErrOut, "kubectl-stage-agent: metrics at http://%s/metrics\n", o.MetricsAddr)
		}
		handover := &agent.Handover{Dir: o.LockDir, Priority: o.Priority, Poll: time.Second, Log: o.ErrOut}
		loops = append(loops, func(ctx context.Context) error { return handover.Run(ctx, n.Run) })
	}
	// The loops run until the process is stopped; the first error stops
	// them all, and the conditions' loop removes its rules on the way out.
	errs := make(chan error, len(loops))
	for _, loop := range loops {
		go func() { errs <- loop(ctx) }()
	}
	all := []error{<-errs}
	cancel()
	for range loops[1:] {
		all = append(all, <-errs)
	}
	return errors.Join(all...)
}

// identity names this agent in the status it publishes: its pod when the
// chart's DaemonSet runs it (the downward API sets POD_NAMESPACE and
// POD_NAME), otherwise its process.
func identity() string {
	if name := os.Getenv("POD_NAME"); name != "" {
		return "pod " + os.Getenv("POD_NAMESPACE") + "/" + name
	}
	return fmt.Sprintf("process %d", os.Getpid())
}

// serveMetrics serves the collector's metrics at addr/metrics until ctx ends.
func serveMetrics(ctx context.Context, addr string, c prometheus.Collector) error {
	registry := prometheus.NewRegistry()
	if err := registry.Register(c); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--metrics-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	server := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	go func() { _ = server.Serve(ln) }()
	return nil
}
