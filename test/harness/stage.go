package harness

import (
	"bytes"
	"context"
	"io"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/cmd"
)

// RunStage runs `kubectl stage ARGS` in this process against kubeconfig, as
// the plugin binary would, and returns what it printed. Progress lines go
// to progress as well as to stderr when progress is not nil.
func RunStage(ctx context.Context, kubeconfig string, progress io.Writer, args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	var errW io.Writer = &errOut
	if progress != nil {
		errW = io.MultiWriter(&errOut, progress)
	}
	root := cmd.NewCmdStage(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: errW})
	root.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err = root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}
