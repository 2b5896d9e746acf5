// Package logs implements `kubectl stage logs APP`: the logs of every peer
// of an app, merged into one stream and prefixed with where each peer runs.
package logs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"
	"k8s.io/kubectl/pkg/util/term"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/peerlogs"
)

var (
	logsLong = templates.LongDesc(`
		Print the logs of every peer of an app, merged into one stream in the
		order of their timestamps, each line prefixed with [SITE/NODE/POD].

		APP is the app's name, which the stage webhook sets as the
		kubectl-stage.io/app label on every peer it admits, or TYPE/NAME of a
		Deployment, StatefulSet or DaemonSet (its selector finds the pods).

		With -f the peers are followed: a peer that starts later joins the
		stream, a deleted one leaves it (shown on stderr as + and -), a
		restarted container is followed in its new run, until Ctrl-C. The logs are read through the API server, like kubectl logs,
		with at most --max-log-requests streams open at once.`)

	logsExample = templates.Examples(`
		# Every peer of the gossip app, merged by time
		kubectl stage logs gossip -n p2p

		# Follow them, the last 10 lines of each first, at two sites only
		kubectl stage logs gossip -f --tail 10 --site tokyo,paris

		# The last hour of a StatefulSet's pods, with the timestamps
		kubectl stage logs sts/node --since 1h --timestamps

		# The previous run of the sidecar container of each peer
		kubectl stage logs gossip -c sidecar --previous`)
)

// Color choices of --color.
const (
	ColorAuto   = "auto"
	ColorAlways = "always"
	ColorNever  = "never"
)

// Options are the flags of `kubectl stage logs`.
type Options struct {
	Follow         bool
	Since          time.Duration
	SinceTime      string
	Tail           int64
	Sites          []string
	Container      string
	Previous       bool
	Prefix         bool
	Timestamps     bool
	Color          string
	MaxLogRequests int

	streamer peerlogs.Streamer
	genericiooptions.IOStreams
}

// NewOptions returns the options with kubectl's defaults.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{Tail: -1, Prefix: true, Color: ColorAuto, MaxLogRequests: 5, IOStreams: streams}
}

// NewCmdLogs returns the `logs` command.
func NewCmdLogs(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	cmd := &cobra.Command{
		Use:     "logs APP",
		Short:   "Print the logs of every peer of an app, merged by time and prefixed with SITE/NODE/POD",
		Long:    logsLong,
		Example: logsExample,
		Args:    cobra.ArbitraryArgs,
		RunE:    cmdutil.RunE(f, o),
	}
	flags := cmd.Flags()
	flags.BoolVarP(&o.Follow, "follow", "f", o.Follow, "follow the peers' logs; peers that start later join, deleted ones leave")
	flags.DurationVar(&o.Since, "since", o.Since, "only lines newer than this duration, like 5s, 2m or 3h")
	flags.StringVar(&o.SinceTime, "since-time", o.SinceTime, "only lines after this time (RFC3339)")
	flags.Int64Var(&o.Tail, "tail", o.Tail, "lines of each peer's recent log to show (-1: all)")
	flags.StringSliceVar(&o.Sites, "site", o.Sites, "only the peers at these sites (comma-separated or repeated)")
	flags.StringVarP(&o.Container, "container", "c", o.Container, "the container to read (default: the pod's default container, else its first)")
	flags.BoolVarP(&o.Previous, "previous", "p", o.Previous, "the logs of the previous run of each peer's container")
	flags.BoolVar(&o.Prefix, "prefix", o.Prefix, "start each line with [SITE/NODE/POD]")
	flags.BoolVar(&o.Timestamps, "timestamps", o.Timestamps, "keep each line's timestamp")
	flags.StringVar(&o.Color, "color", o.Color, "colour each peer's prefix: auto (on a terminal), always or never")
	flags.IntVar(&o.MaxLogRequests, "max-log-requests", o.MaxLogRequests, "most log streams open at once")
	return cmd
}

// Complete reads APP and the namespace and builds the client; nothing here
// talks to the cluster.
func (o *Options) Complete(f kcmdutil.Factory, _ *cobra.Command, args []string) error {
	if len(args) != 1 {
		return errors.New("exactly one APP is required: kubectl stage logs APP (the app's name, or TYPE/NAME)")
	}
	target, err := peerlogs.ParseTarget(args[0])
	if err != nil {
		return err
	}
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	config, err := f.ToRESTConfig()
	if err != nil {
		return err
	}
	// One request per peer, bounded by --max-log-requests: the burst lets
	// them all start at once.
	if o.MaxLogRequests > config.Burst {
		config = rest.CopyConfig(config)
		config.Burst = o.MaxLogRequests
	}
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		return err
	}
	o.streamer = peerlogs.Streamer{
		Client: client, Namespace: ns, Target: target, Sites: o.Sites, Container: o.Container,
		MaxRequests: o.MaxLogRequests, Out: o.Out, ErrOut: o.ErrOut,
	}
	return nil
}

// Validate checks the flags and turns them into the request and the format.
func (o *Options) Validate() error {
	req := peerlogs.Request{Follow: o.Follow, Previous: o.Previous, Since: o.Since, Tail: o.Tail}
	switch {
	case o.Since < 0:
		return errors.New("--since cannot be negative")
	case o.Since != 0 && o.SinceTime != "":
		return errors.New("--since and --since-time cannot be used together: choose one")
	case o.MaxLogRequests < 1:
		return fmt.Errorf("--max-log-requests must be at least 1, not %d", o.MaxLogRequests)
	}
	if o.SinceTime != "" {
		t, err := time.Parse(time.RFC3339, o.SinceTime)
		if err != nil {
			return fmt.Errorf("--since-time %q is not an RFC3339 time such as 2026-01-02T15:04:05Z", o.SinceTime)
		}
		req.SinceTime = &metav1.Time{Time: t}
	}
	var color bool
	switch o.Color {
	case ColorAlways:
		color = true
	case ColorAuto:
		color = term.IsTerminal(o.Out)
	case ColorNever:
	default:
		return fmt.Errorf("--color %q: use auto, always or never", o.Color)
	}
	o.streamer.Request = req
	o.streamer.Format = peerlogs.Format{Prefix: o.Prefix, Timestamps: o.Timestamps, Color: color}
	return nil
}

// Run writes the merged logs; an interrupted -f is a normal end.
func (o *Options) Run(ctx context.Context) error {
	return o.streamer.Run(ctx)
}
