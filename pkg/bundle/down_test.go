package bundle

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDownStopsOnlyThisMachinesKubelet: `down` stops the kubelet running
// in its own PID namespace, and not one with the same --config in another
// (a machine of a test host, a container): CI failed when a test's `down`
// on the host stopped the real-node demo's kubelets in their machines.
func TestDownStopsOnlyThisMachinesKubelet(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: down stops daemons and another PID namespace needs unshare")
	}
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("unshare is not installed")
	}
	dir := t.TempDir()
	// A stand-in named kubelet (bash under that name: /proc's comm is the
	// program's file name) with the kubelet's --config among its arguments.
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bash)
	if err != nil {
		t.Fatal(err)
	}
	fake := filepath.Join(dir, "kubelet")
	if err := os.WriteFile(fake, data, 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(prefix ...string) *exec.Cmd {
		args := append(prefix, fake, "-c", "sleep 300; :", "--config=/var/lib/kubelet/config.yaml")
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	here := start()
	t.Cleanup(func() { _ = syscall.Kill(-here.Process.Pid, syscall.SIGKILL) })
	elsewhere := start("unshare", "--pid", "--fork", "--kill-child")
	t.Cleanup(func() {
		_ = syscall.Kill(-elsewhere.Process.Pid, syscall.SIGKILL)
		_ = elsewhere.Wait()
	})
	exited := make(chan error, 1)
	go func() { exited <- here.Wait() }()
	// Both run as kubelet once they have exec'd.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(here.Process.Pid) + "/comm")
		if strings.TrimSpace(string(comm)) == "kubelet" && len(kubeletsIn(elsewhere.Process.Pid)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stand-in kubelets did not start")
		}
	}

	script, err := sample().Render()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "b.sh")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", path, "down")
	cmd.Env = append(os.Environ(), "STAGE_PREFIX="+dir, "STAGE_IFACE=stgdowntest0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("down: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "kubelet (pid ") {
		t.Errorf("down did not stop this namespace's kubelet:\n%s", out)
	}
	select {
	case <-exited:
	case <-time.After(15 * time.Second):
		t.Fatal("the kubelet in down's own PID namespace still runs")
	}
	if err := elsewhere.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatalf("down stopped the kubelet of another PID namespace: %v\n%s", err, out)
	}
	if pids := kubeletsIn(elsewhere.Process.Pid); len(pids) == 0 {
		t.Errorf("the other namespace's kubelet is gone:\n%s", out)
	}
}

// kubeletsIn are the pids of processes named kubelet under parent.
func kubeletsIn(parent int) []string {
	out, _ := exec.Command("pgrep", "-P", strconv.Itoa(parent), "-x", "kubelet").Output()
	return strings.Fields(string(out))
}
