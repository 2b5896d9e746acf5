// Package rollout implements `kubectl stage rollout` and its subcommands.
package rollout

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

var (
	rolloutLong = templates.LongDesc(`
		Roll a new version of a P2P app across the staging sites in waves.

		Each wave replaces the app's pods at its sites and waits until the new
		pods have been Ready for --min-ready and the optional health check
		passes; only then does the next wave start. A failing wave stops the
		rollout: sites not yet reached keep the previous version, and the
		command says which site failed and why.

		APP is a Deployment, StatefulSet or DaemonSet (NAME or TYPE/NAME).
		StatefulSets and DaemonSets keep their pods' names and volumes: the
		rollout switches them to the OnDelete strategy and replaces each
		site's pods itself. A Deployment gets one Deployment per site
		(NAME-SITE), created from the new template as its wave comes.

		The rollout's state lives on the workload, so rollout status, pause,
		resume, undo and history work from any machine, and a rollout
		interrupted by Ctrl-C continues with rollout resume. One runner at a
		time drives a rollout (a Lease per rollout): a resume while another
		command or the in-cluster controller drives it is refused, naming it.
		With the controller installed, --detach returns at once and the
		controller runs the waves; it also finishes a rollout whose command
		died, once that command's lease has expired.`)

	rolloutExample = templates.Examples(`
		# Roll statefulset/node out to v2: a canary site first, then one site at a time
		kubectl stage rollout sts/node --image node=registry.example/p2p:v2

		# Choose the order, two sites per wave after the canary, and a health check
		kubectl stage rollout node --image registry.example/p2p:v2 --order tokyo,paris \
		  --waves canary,rest --max-sites-at-once 2 --min-ready 30s \
		  --health-http 'http://monitor.example/healthy?site={site}'

		# Plan it and return; the in-cluster rollout controller runs the waves
		kubectl stage rollout sts/node --image node=registry.example/p2p:v2 --detach
		kubectl stage rollout status sts/node -w

		# Roll out a whole new pod spec from a manifest
		kubectl stage rollout -f node-v3.yaml

		# Watch it, pause it, continue it, or return every site to the previous version
		kubectl stage rollout status node
		kubectl stage rollout pause node
		kubectl stage rollout resume node
		kubectl stage rollout undo node`)
)

// PlanFlags choose the waves and the gates; `rollout` and `undo` take them.
type PlanFlags struct {
	Waves      []string
	Order      []string
	MaxAtOnce  int
	MinReady   time.Duration
	Timeout    time.Duration
	HealthExec string
	HealthHTTP string
	GatePeers  string
	OnFailure  string
}

// AddFlags registers the plan flags.
func (p *PlanFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&p.Waves, "waves", []string{rollout.WaveCanary, rollout.WaveRest},
		"wave sizes in order: canary (one site), a number of sites, or rest (all remaining)")
	cmd.Flags().StringSliceVar(&p.Order, "order", nil, "sites to update first, in this order (the others follow by name)")
	cmd.Flags().IntVar(&p.MaxAtOnce, "max-sites-at-once", 1, "most sites in one wave (0: no limit)")
	cmd.Flags().DurationVar(&p.MinReady, "min-ready", 10*time.Second, "how long a site's new pods must be Ready before its wave passes")
	cmd.Flags().DurationVar(&p.Timeout, "timeout", 5*time.Minute, "how long a wave may take before the rollout fails (0: forever)")
	cmd.Flags().StringVar(&p.HealthExec, "health-exec", "", "command (sh -c) that must succeed for each site; gets STAGE_ROLLOUT_SITE, _APP, _NAMESPACE, _REVISION, _HOST_IPS, _POD_IPS")
	cmd.Flags().StringVar(&p.HealthHTTP, "health-http", "", "URL that must answer 2xx for each site; {site}, {app} and {namespace} are replaced")
	cmd.Flags().StringVar(&p.GatePeers, "gate-peers", "", "MIN[,cross-site=N]: a site's wave passes only when each new pod's own peer view (annotation "+api.AnnotationPeersEndpoint+", read through the API server's pod proxy) lists at least MIN live peers, N of them at other sites")
	cmd.Flags().StringVar(&p.OnFailure, "on-failure", rollout.OnFailurePause, "what a failed wave does: pause (stop for you to resume or undo) or undo (return every site to the previous revision at once)")
}

// Plan validates the flags into a rollout plan.
func (p *PlanFlags) Plan() (rollout.Plan, error) {
	if p.MinReady < 0 || p.Timeout < 0 {
		return rollout.Plan{}, errors.New("--min-ready and --timeout cannot be negative")
	}
	if p.HealthHTTP != "" && !strings.HasPrefix(p.HealthHTTP, "http://") && !strings.HasPrefix(p.HealthHTTP, "https://") {
		return rollout.Plan{}, fmt.Errorf("--health-http %q must be an http:// or https:// URL", p.HealthHTTP)
	}
	// Pause, the default, is stored as nothing: such states read as before.
	onFailure := ""
	if p.OnFailure != "" {
		parsed, err := rollout.ParseOnFailure(p.OnFailure)
		if err != nil {
			return rollout.Plan{}, err
		}
		if parsed == rollout.OnFailureUndo {
			onFailure = parsed
		}
	}
	var peers rollout.PeerGate
	if p.GatePeers != "" {
		var err error
		if peers, err = rollout.ParsePeerGate(p.GatePeers); err != nil {
			return rollout.Plan{}, err
		}
	}
	// Planned against a fake site list, so that bad tokens fail before any write.
	if _, err := rollout.PlanWaves([]string{"probe"}, nil, p.Waves, p.MaxAtOnce); err != nil {
		return rollout.Plan{}, err
	}
	return rollout.Plan{
		Order: p.Order, Waves: p.Waves, MaxAtOnce: p.MaxAtOnce,
		Gates: rollout.Gates{
			MinReady: metav1.Duration{Duration: p.MinReady}, Timeout: metav1.Duration{Duration: p.Timeout},
			HealthExec: p.HealthExec, HealthHTTP: p.HealthHTTP, Peers: peers, OnFailure: onFailure,
		},
	}, nil
}

// Options are the flags of `kubectl stage rollout APP`.
type Options struct {
	PlanFlags
	Images     []string
	Filename   string
	Detach     bool
	PrintFlags *cmdutil.PrintFlags

	specs    []rollout.ImageSpec
	manifest *corev1.PodTemplateSpec
	plan     rollout.Plan
	common
}

// common is what every rollout verb needs: the app, the cluster, how it
// writes, and the streams. Its Complete is every verb's.
type common struct {
	// usage is the verb's command line, for the missing-APP message;
	// writes is set for the verbs that write, which have --dry-run.
	usage  string
	writes bool

	ref    rollout.Ref
	client kubernetes.Interface
	dryRun kcmdutil.DryRunStrategy
	genericiooptions.IOStreams
}

// Complete resolves APP in the namespace the kubectl flags select, reads
// --dry-run where the verb writes, and builds the client. Nothing here
// talks to the cluster.
func (c *common) Complete(f kcmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("exactly one APP is required: kubectl stage %s", c.usage)
	}
	var err error
	if c.writes {
		if c.dryRun, err = cmdutil.DryRunStrategy(cmd); err != nil {
			return err
		}
	}
	ns, _, err := f.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	if c.client, err = cmdutil.ClientSet(f, c.dryRun); err != nil {
		return err
	}
	c.ref, err = rollout.ParseRef(args[0], ns)
	return err
}

// roller finds the app's workload in the cluster.
func (c *common) roller(ctx context.Context, ref rollout.Ref) (*rollout.Roller, error) {
	r, err := rollout.New(ctx, c.client, ref, c.ErrOut)
	if err != nil {
		return nil, err
	}
	r.DryRun = c.dryRun
	return r, nil
}

// NewOptions returns the options of `rollout` writing to streams.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{PrintFlags: cmdutil.NewPrintFlags(false), common: common{usage: "rollout APP --image [CONTAINER=]IMAGE", writes: true, IOStreams: streams}}
}

// NewCmdRollout returns `rollout` with its subcommands.
func NewCmdRollout(f kcmdutil.Factory, streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	cmd := &cobra.Command{
		Use:     "rollout APP (--image [CONTAINER=]IMAGE | -f FILE)",
		Short:   "Roll a new version of the app across sites in waves; status, pause, resume, undo, history",
		Long:    rolloutLong,
		Example: rolloutExample,
		Args:    cobra.ArbitraryArgs,
		RunE:    cmdutil.RunE(f, o),
	}
	cmd.Flags().StringArrayVar(&o.Images, "image", nil, "new image as [CONTAINER=]IMAGE (repeatable)")
	cmd.Flags().StringVarP(&o.Filename, "filename", "f", "", "manifest of the workload whose pod template is rolled out")
	cmd.Flags().BoolVar(&o.Detach, "detach", false, "store the plan and return; the in-cluster rollout controller runs the waves (follow with rollout status -w)")
	o.PlanFlags.AddFlags(cmd)
	o.PrintFlags.AddFlags(cmd)
	cmdutil.AddDryRunFlag(cmd)
	cmd.AddCommand(
		NewCmdStatus(f, streams), NewCmdPause(f, streams), NewCmdResume(f, streams),
		NewCmdUndo(f, streams), NewCmdHistory(f, streams),
	)
	return cmd
}

// Complete reads APP (or the manifest's workload), the new template and
// --dry-run, and builds the client.
func (o *Options) Complete(f kcmdutil.Factory, cmd *cobra.Command, args []string) error {
	if o.Filename != "" {
		tmpl, ref, err := readManifest(o.Filename)
		if err != nil {
			return err
		}
		if len(args) == 0 {
			args = []string{ref}
		}
		o.manifest = tmpl
	}
	return o.common.Complete(f, cmd, args)
}

// Validate checks that exactly one source of the new version is given, the
// images, the output format and the plan.
func (o *Options) Validate() error {
	if (len(o.Images) == 0) == (o.manifest == nil) {
		return errors.New("say what to roll out: --image [CONTAINER=]IMAGE or -f FILE (one of them)")
	}
	var err error
	if o.specs, err = rollout.ParseImages(o.Images); err != nil {
		return err
	}
	if err := o.PrintFlags.Validate(); err != nil {
		return err
	}
	if o.Detach && o.HealthExec != "" {
		// The controller's image has no shell, and the command was meant
		// for this machine anyway.
		return errors.New("--health-exec runs on the machine that drives the rollout, and with --detach the in-cluster controller drives it: use --health-http, or leave out --detach")
	}
	o.plan, err = o.PlanFlags.Plan()
	return err
}

// Run rolls the app out and prints the summary.
func (o *Options) Run(ctx context.Context) error {
	// This command reads the new pods' views itself unless it detaches; the
	// missing permission is named before anything is written, not after a
	// wave's timeout.
	if o.plan.Gates.Peers.Min > 0 && !o.Detach {
		if err := access.CheckRead(ctx, o.client, "gate the waves on the new pods' peer views (--gate-peers)", []access.Rule{peergraph.ProxyRule(o.ref.Namespace)}); err != nil {
			return err
		}
	}
	roller, err := o.roller(ctx, o.ref)
	if err != nil {
		return err
	}
	edit := func(t *corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error) { return rollout.SetImages(t, o.specs) }
	cause := "kubectl stage rollout --image " + strings.Join(o.Images, " --image ")
	if o.manifest != nil {
		edit = func(*corev1.PodTemplateSpec) (*corev1.PodTemplateSpec, error) { return o.manifest, nil }
		cause = "kubectl stage rollout -f " + o.Filename
	}
	roller.Detach = o.Detach
	res, err := roller.Start(ctx, edit, cause, o.plan)
	if err == nil && o.Detach && !res.NoChange && o.dryRun == kcmdutil.DryRunNone {
		fmt.Fprintf(o.ErrOut, "detached: the in-cluster rollout controller runs the waves (Helm value rolloutController.enabled; without it, run kubectl stage rollout resume %s); follow it with kubectl stage rollout status -w %s\n", o.ref, o.ref)
	}
	return report(o.Out, o.PrintFlags, o.dryRun, res, err)
}

// report prints the rollout (its summary table, or the Rollout object
// through -o), then returns its error; a pause is not an error.
func report(out io.Writer, printFlags *cmdutil.PrintFlags, dryRun kcmdutil.DryRunStrategy, res *rollout.Result, err error) error {
	if res != nil {
		var printErr error
		if printFlags.HumanReadable() {
			printErr = printSummary(out, res.Object(), dryrun.Suffix(dryRun))
		} else {
			printErr = printFlags.Print(res.Object(), out)
		}
		if err == nil {
			err = printErr
		}
	}
	if errors.Is(err, rollout.ErrPaused) {
		return nil
	}
	return err
}

func readManifest(path string) (*corev1.PodTemplateSpec, string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, "", err
	}
	return rollout.TemplateFromManifest(data)
}
