// Package dashboard implements `kubectl stage dashboard`: a local web page
// that shows the staging cluster live.
package dashboard

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/dashboard"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
)

// Options are the flags of `dashboard`.
type Options struct {
	Address string
	Port    int

	server *dashboard.Server
	genericiooptions.IOStreams
}

// NewCmdDashboard returns the `dashboard` command.
func NewCmdDashboard(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{Address: "127.0.0.1", Port: 3100, IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "dashboard",
		Short: "Serve a local web page that shows sites, nodes, peers, their graph and rollouts live",
		Long: templates.LongDesc(`
			Serve a web page on this machine that shows the staging cluster and
			updates live from watches: the sites and their nodes (Ready, overlay IP,
			credential and token expiry), each app's peers per site, each app's peer
			graph with sites as boxes (read from the peers' own views every few
			seconds, see kubectl stage graph), and every rollout's waves and
			per-site progress.

			The page and everything it loads are served by the plugin: it works with
			no internet. The plugin talks to the API server with your kubeconfig and
			nothing else; the page only reads. It listens on 127.0.0.1 unless told
			otherwise, and answers only requests for the address it printed. Apps and
			rollouts of every namespace are shown, or of one with -n.`),
		Example: templates.Examples(`
			kubectl stage dashboard
			kubectl stage dashboard -n p2p --port 8080`),
		Args: cobra.NoArgs,
		RunE: cmdutil.RunE(f, o),
	}
	cmd.Flags().StringVar(&o.Address, "address", o.Address, "The address to serve on (an IP of this machine)")
	cmd.Flags().IntVar(&o.Port, "port", o.Port, "The port to serve on (0: any free one)")
	return cmd
}

// Complete reads the namespace and the client.
func (o *Options) Complete(f kcmdutil.Factory, _ *cobra.Command, _ []string) error {
	namespace, explicit, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	if !explicit {
		namespace = ""
	}
	client, err := f.KubernetesClientSet()
	if err != nil {
		return err
	}
	o.server = &dashboard.Server{
		Client: client, Namespace: namespace, GraphEvery: 3 * time.Second, Now: time.Now,
		Graph: peergraph.Reader{Client: client, Timeout: 3 * time.Second, Parallel: 16},
	}
	return nil
}

// Validate checks the address and port.
func (o *Options) Validate() error {
	if net.ParseIP(o.Address) == nil && o.Address != "localhost" {
		return fmt.Errorf("--address=%q: give an IP address of this machine, such as 127.0.0.1", o.Address)
	}
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("--port=%d: must be 0-65535 (0: any free port)", o.Port)
	}
	return nil
}

// Run serves until interrupted.
func (o *Options) Run(ctx context.Context) error {
	l, err := net.Listen("tcp", net.JoinHostPort(o.Address, strconv.Itoa(o.Port)))
	if err != nil {
		return fmt.Errorf("cannot serve on %s:%d: %w (choose another with --port)", o.Address, o.Port, err)
	}
	host := o.Address
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	o.server.Hosts = []string{host, "localhost", "127.0.0.1", "::1"}
	url := "http://" + net.JoinHostPort(host, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	fmt.Fprintf(o.Out, "Dashboard at %s (Ctrl-C to stop)\n", url)
	return o.server.Serve(ctx, l)
}
