package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// TestKubectlFindsPlugin builds kubectl-stage as `make build` does, puts it on
// PATH and drives it through a real kubectl's plugin discovery.
func TestKubectlFindsPlugin(t *testing.T) {
	tools, err := harness.FindTools()
	if err != nil {
		t.Fatal(err)
	}
	binDir := t.TempDir()
	build := exec.Command("go", "build", "-ldflags",
		"-X github.com/kubectl-stage/kubectl-stage/pkg/version.gitVersion=v9.8.7-test -X github.com/kubectl-stage/kubectl-stage/pkg/version.gitCommit=0123abc",
		"-o", filepath.Join(binDir, "kubectl-stage"), "./cmd/kubectl-stage")
	build.Dir = harness.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-stage: %v\n%s", err, out)
	}

	kubectl := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(tools.Kubectl, args...)
		// Only the freshly built plugin on PATH: one installed on this machine
		// (make install) would shadow or be shadowed by it.
		cmd.Env = append(os.Environ(), "PATH="+binDir, "KUBECONFIG="+filepath.Join(binDir, "none"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	if out := kubectl("plugin", "list"); !strings.Contains(out, filepath.Join(binDir, "kubectl-stage")) {
		t.Errorf("kubectl plugin list does not show kubectl-stage:\n%s", out)
	}

	help := kubectl("stage", "--help")
	for _, want := range []string{"kubectl stage", "version", "completion", "kubectl stage options"} {
		if !strings.Contains(help, want) {
			t.Errorf("kubectl stage --help lacks %q:\n%s", want, help)
		}
	}

	var got struct {
		ClientVersion struct {
			GitVersion string `json:"gitVersion"`
			GitCommit  string `json:"gitCommit"`
			GoVersion  string `json:"goVersion"`
			Platform   string `json:"platform"`
		} `json:"clientVersion"`
	}
	out := kubectl("stage", "version", "-o", "json")
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("kubectl stage version -o json is not JSON: %v\n%s", err, out)
	}
	if got.ClientVersion.GitVersion != "v9.8.7-test" || got.ClientVersion.GitCommit != "0123abc" {
		t.Errorf("version = %+v, want the values set through -ldflags", got.ClientVersion)
	}
	if got.ClientVersion.GoVersion == "" || got.ClientVersion.Platform == "" {
		t.Errorf("version lacks Go version or platform: %+v", got.ClientVersion)
	}
}
