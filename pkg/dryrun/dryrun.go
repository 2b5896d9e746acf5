// Package dryrun is what the workflows share about kubectl's dry-run
// strategies (k8s.io/kubectl/pkg/cmd/util.DryRunStrategy, the type kubectl's
// own drain helper takes): under client nothing is sent, under server every
// write reaches the API server with dryRun=All and nothing is persisted;
// either way a workflow stops where it would wait for its writes to take
// effect.
package dryrun

import kcmdutil "k8s.io/kubectl/pkg/cmd/util"

// Suffix is what kubectl appends to a dry run's messages.
func Suffix(strategy kcmdutil.DryRunStrategy) string {
	switch strategy {
	case kcmdutil.DryRunClient:
		return " (dry run)"
	case kcmdutil.DryRunServer:
		return " (server dry run)"
	}
	return ""
}
