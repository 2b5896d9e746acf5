// Package cmd assembles the `kubectl stage` command tree. Each verb lives in
// its own package with an Options type (Complete/Validate/Run); this file only
// wires them together with the kubectl-wide flags.
package cmd

import (
	goflag "flag"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	utilcomp "k8s.io/kubectl/pkg/util/completion"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/collect"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/completion"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/dashboard"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/graph"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/hubconfig"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/join"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/leave"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/logs"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/net"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/sites"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/stageinit"
	"github.com/kubectl-stage/kubectl-stage/pkg/cmd/version"
)

var stageLong = templates.LongDesc(`
	kubectl stage builds and operates staging environments for peer-to-peer
	and geographically distributed systems: machines at many real sites join
	one VPN overlay and one Kubernetes cluster, and the system under test is
	deployed, updated and observed on every site from this one command.

	The usual kubectl flags (--kubeconfig, --context, -n, ...) select the
	staging cluster.`)

// The client-side rate limit of every command's requests.
const (
	ClientQPS   = 50
	ClientBurst = 300
)

// NewCmdStage returns the root command with every verb and the kubectl
// connection flags (--kubeconfig, --context, --namespace, --as, ...).
func NewCmdStage(streams genericiooptions.IOStreams) *cobra.Command {
	configFlags := genericclioptions.NewConfigFlags(true).WithDeprecatedPasswordFlag().WithDiscoveryBurst(300).WithDiscoveryQPS(50.0)
	// Commands that observe the system under test make one request per
	// peer (a view through the pod proxy, a log stream): client-go's default
	// of 5 requests/s held `graph` over 300 peers back for a minute. The
	// limits kubectl uses for discovery apply to every request; the API
	// server's priority and fairness still protect it.
	configFlags.WrapConfigFn = func(c *rest.Config) *rest.Config {
		c.QPS, c.Burst = ClientQPS, ClientBurst
		return c
	}

	cmd := &cobra.Command{
		Use:   "kubectl-stage",
		Short: "Staging environments for P2P and geo-distributed systems on Kubernetes",
		Long:  stageLong,
		// Errors are printed once by main, kubectl style ("error: ...").
		SilenceErrors: true,
		SilenceUsage:  true,
		Annotations: map[string]string{
			// Help and usage read "kubectl stage ...", as with every krew plugin.
			cobra.CommandDisplayNameAnnotation: "kubectl stage",
		},
		Run: func(cmd *cobra.Command, args []string) { _ = cmd.Help() },
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)

	flags := cmd.PersistentFlags()
	configFlags.AddFlags(flags)
	addKlogVerbosity(cmd)

	factory := kcmdutil.NewFactory(configFlags)
	registerGlobalFlagCompletion(cmd, factory)

	groups := templates.CommandGroups{
		{
			Message: "Site Enrollment Commands:",
			Commands: []*cobra.Command{
				stageinit.NewCmdInit(factory, streams),
				join.NewCmdJoin(factory, streams),
				sites.NewCmdSites(factory, streams),
				sites.NewCmdStatus(factory, streams),
				leave.NewCmdLeave(factory, streams),
				hubconfig.NewCmdHubConfig(factory, streams),
				net.NewCmdNet(factory, streams),
			},
		},
		{
			Message: "Deploy Commands:",
			Commands: []*cobra.Command{
				rollout.NewCmdRollout(factory, streams),
			},
		},
		{
			Message: "Observe Commands:",
			Commands: []*cobra.Command{
				logs.NewCmdLogs(factory, streams),
				graph.NewCmdGraph(factory, streams),
				collect.NewCmdCollect(factory, streams),
				dashboard.NewCmdDashboard(factory, streams),
			},
		},
		{
			Message: "Other Commands:",
			Commands: []*cobra.Command{
				completion.NewCmdCompletion(streams),
				version.NewCmdVersion(streams),
			},
		},
	}
	groups.Add(cmd)
	// Global flags are listed by `kubectl stage options`, as in kubectl.
	templates.ActsAsRootCommand(cmd, []string{"options", "help"}, groups...)
	cmd.AddCommand(newCmdOptions(streams))
	// The completion command above replaces cobra's default one.
	cmd.CompletionOptions.DisableDefaultCmd = true
	return cmd
}

func newCmdOptions(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "options",
		Short: "Print the list of flags inherited by all commands",
		Long:  "Print the list of flags inherited by all commands",
		Example: templates.Examples(`
			# Print flags inherited by all commands
			kubectl stage options`),
		Run: func(cmd *cobra.Command, args []string) { _ = cmd.Usage() },
	}
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.Out)
	templates.UseOptionsTemplates(cmd)
	return cmd
}

// addKlogVerbosity exposes -v/--v so that `kubectl stage -v=6` logs API
// requests exactly as kubectl does.
func addKlogVerbosity(cmd *cobra.Command) {
	fs := goflag.NewFlagSet("klog", goflag.ContinueOnError)
	klog.InitFlags(fs)
	cmd.PersistentFlags().AddGoFlag(fs.Lookup("v"))
}

func registerGlobalFlagCompletion(cmd *cobra.Command, f kcmdutil.Factory) {
	utilcomp.SetFactoryForCompletion(f)
	complete := map[string]cobra.CompletionFunc{
		"namespace": func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return utilcomp.CompGetResource(f, "namespace", toComplete), cobra.ShellCompDirectiveNoFileComp
		},
		"context": func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return utilcomp.ListContextsInConfig(toComplete), cobra.ShellCompDirectiveNoFileComp
		},
		"cluster": func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return utilcomp.ListClustersInConfig(toComplete), cobra.ShellCompDirectiveNoFileComp
		},
		"user": func(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
			return utilcomp.ListUsersInConfig(toComplete), cobra.ShellCompDirectiveNoFileComp
		},
	}
	for name, fn := range complete {
		kcmdutil.CheckErr(cmd.RegisterFlagCompletionFunc(name, fn))
	}
}
