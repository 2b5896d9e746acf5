package enrollment

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

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

// writeKubeconfig saves cfg as a kubeconfig file.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
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
