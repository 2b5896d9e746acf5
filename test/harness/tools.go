package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Tools are the executables the harness runs.
type Tools struct {
	Etcd                  string
	KubeAPIServer         string
	KubeScheduler         string
	KubeControllerManager string
	Kubectl               string
	Kwok                  string
	Helm                  string
	Krew                  string
	// Kubelet and Kubeadm run real nodes; they are optional (NodeTools
	// says whether they are built).
	Kubelet string
	Kubeadm string
	// KwokStages is the kwok configuration holding the node and pod stages.
	KwokStages string
	// KubernetesVersion is the pinned version of the control plane.
	KubernetesVersion string
}

const buildHint = "run `make tools` once (it builds the control plane from Go modules into .cache/tools, several minutes the first time)"

// RepoRoot is the checkout the harness was compiled from.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// FindTools locates the control-plane binaries. STAGE_TOOLS_DIR overrides
// the cache folder (default .cache/tools in the checkout); ETCD overrides the
// etcd binary (default: etcd on PATH, from Debian's etcd-server).
func FindTools() (Tools, error) {
	root := RepoRoot()
	version, err := pinnedKubernetesVersion(filepath.Join(root, "hack", "tools", "go.mod"))
	if err != nil {
		return Tools{}, err
	}
	pins := map[string]string{}
	for _, tool := range []string{"kwok", "helm", "krew"} {
		pin, err := os.ReadFile(filepath.Join(root, "hack", "tools", tool+"-version"))
		if err != nil {
			return Tools{}, err
		}
		pins[tool] = tool + "-" + strings.TrimSpace(string(pin))
	}
	cache := os.Getenv("STAGE_TOOLS_DIR")
	if cache == "" {
		cache = filepath.Join(root, ".cache", "tools")
	}
	k8sDir := filepath.Join(cache, "k8s-"+version)
	kwokDir := filepath.Join(cache, pins["kwok"])
	t := Tools{
		KubeAPIServer:         filepath.Join(k8sDir, "kube-apiserver"),
		KubeScheduler:         filepath.Join(k8sDir, "kube-scheduler"),
		KubeControllerManager: filepath.Join(k8sDir, "kube-controller-manager"),
		Kubectl:               filepath.Join(k8sDir, "kubectl"),
		Kwok:                  filepath.Join(kwokDir, "kwok"),
		KwokStages:            filepath.Join(kwokDir, "stages.yaml"),
		Helm:                  filepath.Join(cache, pins["helm"], "helm"),
		Krew:                  filepath.Join(cache, pins["krew"], "krew"),
		KubernetesVersion:     version,
		Kubelet:               filepath.Join(k8sDir, "kubelet"),
		Kubeadm:               filepath.Join(k8sDir, "kubeadm"),
	}
	t.Etcd = os.Getenv("ETCD")
	if t.Etcd == "" {
		if t.Etcd, err = exec.LookPath("etcd"); err != nil {
			return Tools{}, fmt.Errorf("etcd not found on PATH: install Debian's etcd-server (apt-get install etcd-server) or set ETCD")
		}
	}
	for _, path := range []string{t.KubeAPIServer, t.KubeScheduler, t.KubeControllerManager, t.Kubectl, t.Kwok, t.KwokStages, t.Helm, t.Krew} {
		if _, err := os.Stat(path); err != nil {
			return Tools{}, fmt.Errorf("%s is missing: %s", path, buildHint)
		}
	}
	return t, nil
}

// NodeTools says whether the node components are built, and if not, how
// to build them: tests of real nodes skip without them.
func (t Tools) NodeTools() error {
	for _, path := range []string{t.Kubelet, t.Kubeadm} {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("%s is missing: %s", path, buildHint)
		}
	}
	return nil
}

// pinnedKubernetesVersion reads the k8s.io/kubernetes version the tools
// module requires, so the cache folder follows the pin automatically.
func pinnedKubernetesVersion(goMod string) (string, error) {
	f, err := os.Open(goMod)
	if err != nil {
		return "", fmt.Errorf("reading the tools module: %w", err)
	}
	defer func() { _ = f.Close() }()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 3 && fields[0] == "require" && fields[1] == "k8s.io/kubernetes" {
			return fields[2], nil
		}
	}
	return "", fmt.Errorf("%s does not require k8s.io/kubernetes on a single line", goMod)
}
