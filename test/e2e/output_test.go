package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// TestOutputRoundTrips: what `kubectl stage sites|status -o json` prints is
// an object list a user feeds to jq, and jq reads out of it exactly what
// -o jsonpath, -o go-template and -o name print, through kubectl's plugin
// mechanism against a real API server.
func TestOutputRoundTrips(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Skip("jq is not installed: run hack/install-deps.sh")
	}
	ctx := context.Background()
	cp := harness.StartForTest(t, harness.Options{ServingIPs: []net.IP{net.ParseIP("10.23.0.1")}})
	if err := cp.KubeadmBootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	binDir := filepath.Dir(harness.BuildStage(t))
	sh := func(t *testing.T, script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
		cmd.Dir = t.TempDir()
		cmd.Env = append(os.Environ(), "PATH="+binDir+":"+filepath.Dir(cp.Tools.Kubectl)+":"+os.Getenv("PATH"), "KUBECONFIG="+cp.Kubeconfig)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	sh(t, "kubectl stage init --hub-endpoint vpn.example.org:1194 >/dev/null")
	for _, n := range []string{"tokyo tokyo-1", "tokyo tokyo-2", "osaka osaka-1"} {
		site, node, _ := strings.Cut(n, " ")
		sh(t, "kubectl stage join "+site+" --node "+node+" >/dev/null")
	}

	for _, tc := range []struct{ name, viaJQ, direct string }{
		{"sites: names and node counts",
			`kubectl stage sites -o json | jq -r '.items[] | "\(.metadata.name)=\(.status.nodes)"'`,
			`kubectl stage sites -o go-template='{{range .items}}{{.metadata.name}}={{.status.nodes}}{{"\n"}}{{end}}'`},
		{"status: overlay IPs",
			`kubectl stage status -o json | jq -r '.items[] | .spec.overlayIP'`,
			`kubectl stage status -o jsonpath='{range .items[*]}{.spec.overlayIP}{"\n"}{end}'`},
		{"status: kind and names",
			`kubectl stage status -o json | jq -r '.items[] | "enrollednode.kubectl-stage.io/\(.metadata.name)"'`,
			`kubectl stage status -o name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, want := sh(t, tc.viaJQ), sh(t, tc.direct)
			if got != want || strings.Count(got, "\n") < 2 {
				t.Errorf("through jq:\n%s\ndirectly:\n%s", got, want)
			}
		})
	}
	if got := sh(t, `kubectl stage status -o json | jq -r '[.apiVersion, .kind, (.items | map(.kind) | unique | join(","))] | join(" ")'`); got != "kubectl-stage.io/v1alpha1 EnrolledNodeList EnrolledNode\n" {
		t.Errorf("status -o json is %q; want a kubectl-stage.io/v1alpha1 EnrolledNodeList whose items say they are EnrolledNodes", got)
	}
}
