package harness

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

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

// BuildStage builds the kubectl-stage binary from this checkout into a
// temporary directory, for tests that run it as separate processes;
// KUBECTL_STAGE_BIN names another binary instead (an older build, to show a
// test fails on it).
func BuildStage(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("KUBECTL_STAGE_BIN"); bin != "" {
		return bin
	}
	return Build(t, "./cmd/kubectl-stage")
}

// Build builds the command in pkg (a path in this module, such as
// ./examples/gossip) into a temporary directory and returns its path.
func Build(t testing.TB, pkg string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, pkg)
	build.Dir = RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	return bin
}
