// Package version implements `kubectl stage version`.
package version

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
	"github.com/kubectl-stage/kubectl-stage/pkg/version"
)

var (
	versionLong = templates.LongDesc(`
		Print the version of the kubectl stage plugin: release, git commit,
		build date, Go version and platform.`)

	versionExample = templates.Examples(`
		# Print the plugin version
		kubectl stage version

		# Print the full build information as JSON
		kubectl stage version -o json

		# Print only the release
		kubectl stage version -o jsonpath='{.clientVersion.gitVersion}'`)
)

// Options holds the flags of `kubectl stage version`.
type Options struct {
	PrintFlags *cmdutil.PrintFlags

	genericiooptions.IOStreams
}

// NewOptions returns Options writing to streams.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	// A version has no name, so -o name does not apply.
	return &Options{PrintFlags: cmdutil.NewPrintFlags(false).WithoutName(), IOStreams: streams}
}

// NewCmdVersion returns the `version` command.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewOptions(streams)
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print the version of the kubectl stage plugin",
		Long:    versionLong,
		Example: versionExample,
		Args:    cobra.NoArgs,
		// The version is the binary's own: no cluster, so no factory.
		RunE: cmdutil.RunE(nil, o),
	}
	o.PrintFlags.AddFlags(cmd)
	return cmd
}

// Complete has nothing to read: version takes no arguments (cobra checks).
func (o *Options) Complete(kcmdutil.Factory, *cobra.Command, []string) error { return nil }

// Validate checks the output format.
func (o *Options) Validate() error { return o.PrintFlags.Validate() }

// Run prints the version.
func (o *Options) Run(context.Context) error {
	info := version.Get()
	if !o.PrintFlags.HumanReadable() {
		return o.PrintFlags.Print(&v1alpha1.PluginVersion{ClientVersion: info}, o.Out)
	}
	_, err := fmt.Fprintf(o.Out, "kubectl-stage version: %s (commit %s, built %s, %s %s)\n",
		info.GitVersion, orUnknown(info.GitCommit), orUnknown(info.BuildDate), info.GoVersion, info.Platform)
	return err
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
