package enrollment

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// stage runs `kubectl stage ARGS` in process against kubeconfig.
func stage(t *testing.T, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return harness.RunStage(context.Background(), kubeconfig, nil, args...)
}

// mustStage is stage that fails the test on error.
func mustStage(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, errOut, err := stage(t, kubeconfig, args...)
	if err != nil {
		t.Fatalf("kubectl stage %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
	}
	return out
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

func siteStore(cp *harness.ControlPlane) *site.Store { return site.NewStore(cp.Client) }

// runBundle runs a join bundle step and returns its combined output; the
// step's failure is part of what the tests read.
func runBundle(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, _ := exec.Command("bash", append([]string{path}, args...)...).CombinedOutput()
	return string(out)
}
