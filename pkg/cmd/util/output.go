// Package util holds what every kubectl-stage command shares: the output
// flags and the way structured results are printed.
package util

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"
)

// Output formats understood by every command that prints a result.
const (
	OutputJSON = "json"
	OutputYAML = "yaml"
	OutputWide = "wide"
)

// OutputFlags is the `-o/--output` flag shared by the commands. The empty
// format is the human-readable table; "wide" adds columns; json and yaml
// print the same data as structured documents.
type OutputFlags struct {
	Format string

	allowed []string
}

// NewOutputFlags accepts json and yaml, plus wide when the command has a
// wider table to offer.
func NewOutputFlags(withWide bool) *OutputFlags {
	allowed := []string{OutputJSON, OutputYAML}
	if withWide {
		allowed = append(allowed, OutputWide)
	}
	return &OutputFlags{allowed: allowed}
}

// AddFlags registers -o/--output with shell completion of its values.
func (f *OutputFlags) AddFlags(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.Format, "output", "o", f.Format,
		fmt.Sprintf("Output format. One of: (%s).", strings.Join(f.allowed, ", ")))
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return f.allowed, cobra.ShellCompDirectiveNoFileComp
	})
}

// Validate rejects a format the command cannot print, in kubectl's words.
func (f *OutputFlags) Validate() error {
	if f.Format == "" || slices.Contains(f.allowed, f.Format) {
		return nil
	}
	return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: %s",
		f.Format, strings.Join(f.allowed, ","))
}

// Structured reports whether the result goes out as json or yaml.
func (f *OutputFlags) Structured() bool {
	return f.Format == OutputJSON || f.Format == OutputYAML
}

// Wide reports whether the table should carry its extra columns.
func (f *OutputFlags) Wide() bool { return f.Format == OutputWide }

// PrintStructured writes v as indented JSON or as YAML.
func (f *OutputFlags) PrintStructured(out io.Writer, v any) error {
	switch f.Format {
	case OutputJSON:
		data, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(out, "%s\n", data)
		return err
	case OutputYAML:
		data, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = out.Write(data)
		return err
	default:
		return fmt.Errorf("output format %q is not structured", f.Format)
	}
}
