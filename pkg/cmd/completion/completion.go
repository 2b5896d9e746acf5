// Package completion implements `kubectl stage completion SHELL`.
package completion

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/kubectl/pkg/util/templates"
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

// NewCmdCompletion returns the `completion` command.
func NewCmdCompletion(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:                   "completion SHELL",
		DisableFlagsInUseLine: true,
		Short:                 "Output shell completion code for the specified shell",
		Long:                  completionLong,
		Example:               completionExample,
		ValidArgs:             shells(),
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("exactly one shell is required, one of: %s", strings.Join(shells(), ", "))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			gen, ok := generators[args[0]]
			if !ok {
				return fmt.Errorf("unsupported shell %q, must be one of: %s", args[0], strings.Join(shells(), ", "))
			}
			return gen(cmd.Root(), streams.Out)
		},
	}
}
