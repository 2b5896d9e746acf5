// Package util holds what every kubectl-stage command shares: the output
// flags and the way results are printed.
package util

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/printing"
)

// Output formats of a command's own human-readable view.
const (
	// OutputWide adds columns to a command's table.
	OutputWide = "wide"
)

// PrintFlags is -o/--output: cli-runtime's printers (json, yaml, name,
// jsonpath, go-template and their file forms, with --template,
// --allow-missing-template-keys and --show-managed-fields), plus the
// command's own human-readable view, the default, and `wide` where the
// command's table has more columns.
type PrintFlags struct {
	*genericclioptions.PrintFlags

	wide   bool
	noName bool
	// own are further formats the command renders itself (dot, mermaid).
	own []string
}

// NewPrintFlags returns the flags of a command whose human view has a wide
// form when withWide is set.
func NewPrintFlags(withWide bool) *PrintFlags {
	return &PrintFlags{PrintFlags: genericclioptions.NewPrintFlags(""), wide: withWide}
}

// WithoutName drops -o name, for objects that have no name (a version).
func (f *PrintFlags) WithoutName() *PrintFlags {
	f.noName = true
	return f
}

// WithFormats adds formats the command renders itself.
func (f *PrintFlags) WithFormats(formats ...string) *PrintFlags {
	f.own = append(f.own, formats...)
	return f
}

// AllowedFormats lists what -o accepts, the command's own ones first.
func (f *PrintFlags) AllowedFormats() []string {
	var formats []string
	if f.wide {
		formats = append(formats, OutputWide)
	}
	formats = append(formats, f.own...)
	for _, format := range f.PrintFlags.AllowedFormats() {
		if !(f.noName && format == "name") {
			formats = append(formats, format)
		}
	}
	return formats
}

// AddFlags registers -o/--output (with completion of its values) and the
// template flags.
func (f *PrintFlags) AddFlags(cmd *cobra.Command) {
	f.PrintFlags.AddFlags(cmd)
	cmd.Flags().Lookup("output").Usage = fmt.Sprintf("Output format. One of: (%s).", strings.Join(f.AllowedFormats(), ", "))
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return f.AllowedFormats(), cobra.ShellCompDirectiveNoFileComp
	})
}

// Format is the requested output format ("" for the human view).
func (f *PrintFlags) Format() string {
	if f.OutputFormat == nil {
		return ""
	}
	return *f.OutputFormat
}

// HumanReadable reports whether the command prints its own view (the
// default, or wide) rather than an object through a printer.
func (f *PrintFlags) HumanReadable() bool {
	return f.Format() == "" || (f.wide && f.Format() == OutputWide) || slices.Contains(f.own, f.Format())
}

// Wide reports whether the table should carry its extra columns.
func (f *PrintFlags) Wide() bool { return f.wide && f.Format() == OutputWide }

// Validate rejects a format the command cannot print and a bad template, in
// kubectl's words, before the command does anything.
func (f *PrintFlags) Validate() error {
	if f.HumanReadable() {
		return nil
	}
	// -o jsonpath=TEMPLATE and the like carry their template after "=".
	name, _, _ := strings.Cut(f.Format(), "=")
	if !slices.Contains(f.AllowedFormats(), name) {
		return fmt.Errorf("unable to match a printer suitable for the output format %q, allowed formats are: %s",
			f.Format(), strings.Join(f.AllowedFormats(), ","))
	}
	_, err := f.PrintFlags.ToPrinter()
	return err
}

// Print writes obj with the requested printer, apiVersion and kind set from
// its type (each item's too, in a list).
func (f *PrintFlags) Print(obj runtime.Object, out io.Writer) error {
	printer, err := f.PrintFlags.ToPrinter()
	if err != nil {
		return err
	}
	if err := printing.SetKinds(obj); err != nil {
		return err
	}
	// cli-runtime's name printer takes no typed lists: name each item, as
	// kubectl does after flattening a list.
	if f.Format() == "name" && meta.IsListType(obj) {
		items, err := meta.ExtractList(obj)
		if err != nil {
			return err
		}
		for _, item := range items {
			if err := printer.PrintObj(item, out); err != nil {
				return err
			}
		}
		return nil
	}
	return printer.PrintObj(obj, out)
}
