// Package completion implements `kubectl stage completion SHELL`.
package completion

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/util/templates"

	cmdutil "github.com/kubectl-stage/kubectl-stage/pkg/cmd/util"
)

var (
	completionLong = templates.LongDesc(`
		Output shell completion code for the specified shell (bash, zsh, fish or
		powershell), for the kubectl-stage binary.

		For "kubectl stage <TAB>" (kubectl 1.26 and later), kubectl runs an
		executable named kubectl_complete-stage from your PATH: "completion
		kubectl" prints that script; save it on your PATH and make it executable.`)

	completionExample = templates.Examples(`
		# Load completion for kubectl-stage in the current bash session
		source <(kubectl-stage completion bash)

		# Make "kubectl stage <TAB>" complete through kubectl
		kubectl stage completion kubectl > ~/.local/bin/kubectl_complete-stage
		chmod +x ~/.local/bin/kubectl_complete-stage`)
)

// kubectlPluginScript is what kubectl runs to complete `kubectl stage ...`:
// kubectl passes the words after "stage" and expects cobra's __complete output.
const kubectlPluginScript = `#!/usr/bin/env sh
# Shell completion for "kubectl stage", called by kubectl (1.26+).
exec kubectl-stage __complete "$@"
`

var generators = map[string]func(root *cobra.Command, out io.Writer) error{
	"bash":       func(root *cobra.Command, out io.Writer) error { return root.GenBashCompletionV2(out, true) },
	"zsh":        func(root *cobra.Command, out io.Writer) error { return root.GenZshCompletion(out) },
	"fish":       func(root *cobra.Command, out io.Writer) error { return root.GenFishCompletion(out, true) },
	"powershell": func(root *cobra.Command, out io.Writer) error { return root.GenPowerShellCompletionWithDesc(out) },
	"kubectl": func(_ *cobra.Command, out io.Writer) error {
		_, err := io.WriteString(out, kubectlPluginScript)
		return err
	},
}

func shells() []string {
	names := make([]string, 0, len(generators))
	for name := range generators {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Options are the arguments of `kubectl stage completion SHELL`.
type Options struct {
	Shell string

	root *cobra.Command
	genericiooptions.IOStreams
}

// NewCmdCompletion returns the `completion` command.
func NewCmdCompletion(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{IOStreams: streams}
	return &cobra.Command{
		Use:                   "completion SHELL",
		DisableFlagsInUseLine: true,
		Short:                 "Output shell completion code for the specified shell",
		Long:                  completionLong,
		Example:               completionExample,
		ValidArgs:             shells(),
		// Completion is of the binary itself: no cluster, so no factory.
		RunE: cmdutil.RunE(nil, o),
	}
}

// Complete reads SHELL and the command tree to complete.
func (o *Options) Complete(_ kcmdutil.Factory, cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("exactly one shell is required, one of: %s", strings.Join(shells(), ", "))
	}
	o.Shell, o.root = args[0], cmd.Root()
	return nil
}

// Validate checks that the shell is one completion is generated for.
func (o *Options) Validate() error {
	if _, ok := generators[o.Shell]; !ok {
		return fmt.Errorf("unsupported shell %q, must be one of: %s", o.Shell, strings.Join(shells(), ", "))
	}
	return nil
}

// Run writes the completion script.
func (o *Options) Run(context.Context) error { return generators[o.Shell](o.root, o.Out) }
