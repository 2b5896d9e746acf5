// Package version implements `kubectl stage version`.
package version

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"

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
		kubectl stage version -o json`)
)

// Output is what -o json|yaml prints; the key matches `kubectl version -o json`.
type Output struct {
	ClientVersion version.Info `json:"clientVersion"`
}

// Options holds the flags of `kubectl stage version`.
type Options struct {
	Output *cmdutil.OutputFlags

	genericiooptions.IOStreams
}

// NewOptions returns Options writing to streams.
func NewOptions(streams genericiooptions.IOStreams) *Options {
	return &Options{Output: cmdutil.NewOutputFlags(false), IOStreams: streams}
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
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	o.Output.AddFlags(cmd)
	return cmd
}

// Validate checks the output format.
func (o *Options) Validate() error { return o.Output.Validate() }

// Run prints the version.
func (o *Options) Run() error {
	info := version.Get()
	if o.Output.Structured() {
		return o.Output.PrintStructured(o.Out, Output{ClientVersion: info})
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
