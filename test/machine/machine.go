// Package machine makes "machines" on one host for real-node tests: each is
// a network namespace (from test/netns, reachable only over the overlay)
// plus its own mount, UTS and PID namespaces, with private copies of the
// directories a kubelet, containerd, kubeadm and the join bundle write, its
// own containerd, and a cgroup root no other machine uses. Processes run in
// it through nsenter (not `ip netns exec`, which remounts /sys and loses
// the cgroup mounts the kubelet needs).
//
// Its init (PID 1 of its PID namespace) is the pause binary; when the
// machine is destroyed, or the test binary dies, that init is killed and
// the kernel kills every process of the machine with it.
package machine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// PrivateDirs are the directories each machine has its own copy of.
var PrivateDirs = []string{
	"/etc/kubernetes", "/etc/kubectl-stage", "/etc/cni/net.d",
	"/var/lib/kubelet", "/var/lib/containerd", "/var/lib/cni",
	"/var/log/pods", "/var/log/containers",
	"/run/containerd", "/run/netns", "/run/kubectl-stage",
}

// Config describes a machine.
type Config struct {
	// Name is its hostname and node name.
	Name string
	// NetNS is the network namespace it lives in (under /run/netns).
	NetNS string
	// Hosts are /etc/hosts entries besides localhost (name -> address); the
	// machine's own name should be one, or kubeadm waits on DNS for it.
	Hosts map[string]string
	// PodSubnet is the range its bridge CNI hands out (a /24 of the cluster's pod range).
	PodSubnet string
	// Init is the pause binary that becomes the machine's PID 1.
	Init string
	// SandboxImage is containerd's sandbox (pause) image, imported beforehand.
	SandboxImage string
	// Dir holds the machine's private directories, configuration and logs.
	Dir string
}

// Machine is a running machine.
type Machine struct {
	Config
	// CgroupRoot is the kubelet's cgroupRoot, e.g. /stage-node-1.
	CgroupRoot string

	holder  *exec.Cmd // unshare, the parent of the machine's init
	initPID int
	pidNS   string // the init's PID namespace, as /proc/PID/ns/pid reads
	// usesHostDirs is whether m is registered as a user of the host's
	// mount points (see hostDirsFile).
	usesHostDirs bool
	containerd   *harness.Daemon
}

// Start creates the machine's namespaces, mounts and cgroups. On error
// whatever was created is removed again.
func Start(cfg Config) (_ *Machine, err error) {
	m := &Machine{Config: cfg, CgroupRoot: "/stage-" + cfg.Name}
	defer func() {
		if err != nil {
			err = errors.Join(err, m.Destroy())
		}
	}()
	for _, d := range append([]string{"rootfs", "logs"}, "cgroup-move") {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return m, err
		}
	}
	m.usesHostDirs = true
	if err := m.acquireHostDirs(PrivateDirs); err != nil {
		return m, err
	}
	for _, d := range PrivateDirs {
		if err := os.MkdirAll(m.Path(d), 0o755); err != nil {
			return m, err
		}
	}
	if err := m.writeFiles(); err != nil {
		return m, err
	}
	if err := createCgroup(m.CgroupRoot); err != nil {
		return m, err
	}
	if err := m.startInit(); err != nil {
		return m, err
	}
	return m, nil
}

// Path is where path inside the machine is stored on the host (for the
// private directories and files).
func (m *Machine) Path(path string) string { return filepath.Join(m.Dir, "rootfs", path) }

func (m *Machine) writeFiles() error {
	hosts := "127.0.0.1 localhost\n::1 localhost\n"
	for name, addr := range m.Hosts {
		hosts += addr + " " + name + "\n"
	}
	cni := fmt.Sprintf(`{"cniVersion": "0.4.0", "name": "stage", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "loopback"}]}
`, m.PodSubnet)
	files := map[string]string{
		"hosts":       hosts,
		"resolv.conf": "# a machine of the real-node tests: no lookup leaves the host\nnameserver 127.0.0.1\n",
		"containerd.toml": fmt.Sprintf(`version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]
[grpc]
  address = "/run/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  # A negative oom_score_adj needs CAP_SYS_RESOURCE, which CI's VMs lack:
  # without this every sandbox dies in runc create.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`, m.SandboxImage),
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(m.Dir, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(m.Path("/etc/cni/net.d"), "10-stage.conflist"), []byte(cni), 0o644)
}

// setupScript runs as the machine's first process: its hostname, a sysfs
// of its own network namespace with the host's cgroup tree moved under it,
// its private directories and files, then the init.
const setupScript = `set -euo pipefail
dir=$1 name=$2 init=$3; shift 3
hostname "$name"
mount --rbind /sys/fs/cgroup "$dir/cgroup-move"
mount -t sysfs sysfs /sys
mount --move "$dir/cgroup-move" /sys/fs/cgroup
for d in "$@"; do mount --bind "$dir/rootfs$d" "$d"; done
mount --make-rshared /var/lib/kubelet
mount --bind "$dir/hosts" /etc/hosts
mount --bind "$dir/resolv.conf" /etc/resolv.conf
exec "$init"
`

func (m *Machine) startInit() error {
	args := []string{"--net=/run/netns/" + m.NetNS, "--",
		"unshare", "--mount", "--uts", "--pid", "--fork", "--kill-child", "--propagation", "private", "--mount-proc", "--",
		"bash", "-c", setupScript, "machine-setup", m.Dir, m.Name, m.Init}
	args = append(args, PrivateDirs...)
	cmd := exec.Command("nsenter", args...)
	logFile, err := os.Create(filepath.Join(m.Dir, "logs", "init.log"))
	if err != nil {
		return err
	}
	defer func() { _ = logFile.Close() }()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The test binary's death kills unshare, whose death (--kill-child)
	// kills the init, whose death kills the whole machine.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting machine %s: %w", m.Name, err)
	}
	m.holder = cmd
	// Ready when the init is the pause binary (the setup has run).
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pid := firstChild(cmd.Process.Pid); pid != 0 {
			if exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); exe == m.Init {
				m.initPID = pid
				m.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
				return nil
			}
		}
		if time.Now().After(deadline) || exited(cmd.Process.Pid) {
			log, _ := os.ReadFile(logFile.Name())
			return fmt.Errorf("machine %s did not start: %s", m.Name, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func firstChild(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0
	}
	child, _ := strconv.Atoi(fields[0])
	return child
}

func exited(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err != nil || strings.Contains(string(data), ") Z ")
}

// Command runs name in the machine: its network, mount, UTS and PID
// namespaces, with env added to this process's environment.
func (m *Machine) Command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(m.initPID), "-n", "-m", "-u", "-p", "--", name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

// Run runs name in the machine and returns its combined output.
func (m *Machine) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := m.Command(ctx, nil, name, args...).CombinedOutput()
	return string(out), err
}

// StartContainerd runs containerd in the machine, as its init system would,
// and waits until it answers.
func (m *Machine) StartContainerd(ctx context.Context) error {
	d, err := harness.StartDaemon("containerd-"+m.Name, "nsenter",
		[]string{"-t", strconv.Itoa(m.initPID), "-n", "-m", "-u", "-p", "--", "containerd", "--config", filepath.Join(m.Dir, "containerd.toml")},
		filepath.Join(m.Dir, "logs", "containerd.log"))
	if err != nil {
		return err
	}
	m.containerd = d
	for {
		if _, err := m.Run(ctx, "ctr", "version"); err == nil {
			return nil
		}
		if d.Exited() {
			log, _ := os.ReadFile(filepath.Join(m.Dir, "logs", "containerd.log"))
			return fmt.Errorf("containerd on %s exited:\n%s", m.Name, tail(string(log), 20))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd on %s does not answer: %w", m.Name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// ImportImage imports an OCI image tarball into the machine's containerd,
// in the namespace the kubelet's CRI uses.
func (m *Machine) ImportImage(ctx context.Context, tarball string) error {
	if out, err := m.Run(ctx, "ctr", "-n", "k8s.io", "images", "import", tarball); err != nil {
		return fmt.Errorf("importing %s on %s: %v\n%s", tarball, m.Name, err, out)
	}
	return nil
}

// Processes are the host pids of every process in the machine, its init
// included.
func (m *Machine) Processes() []int {
	if m.pidNS == "" {
		return nil
	}
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid)); ns == m.pidNS {
			pids = append(pids, pid)
		}
	}
	return pids
}

// PIDsOf are the host pids of the machine's processes named comm (e.g. "kubelet").
func (m *Machine) PIDsOf(comm string) []int {
	var pids []int
	for _, pid := range m.Processes() {
		if name, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.TrimSpace(string(name)) == comm {
			pids = append(pids, pid)
		}
	}
	return pids
}

// ProcessMemory sums the resident memory of the machine's processes named
// comm (e.g. "kubelet"), in bytes.
func (m *Machine) ProcessMemory(comm string) int64 {
	var total int64
	for _, pid := range m.PIDsOf(comm) {
		status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				total += kb * 1024
			}
		}
	}
	return total
}

// Destroy kills every process of the machine, removes its cgroups, its
// directory and, if it is the last machine on the host, the mount points
// machines created on the host, and reports anything that is left. It is safe to call more than once.
func (m *Machine) Destroy() error {
	if m.containerd != nil {
		m.containerd.Stop()
	}
	if m.holder != nil && m.holder.Process != nil {
		_ = syscall.Kill(-m.holder.Process.Pid, syscall.SIGKILL)
		_ = m.holder.Wait()
	}
	var errs []error
	deadline := time.Now().Add(10 * time.Second)
	for len(m.Processes()) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if left := m.Processes(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("machine %s: processes %v survive", m.Name, left))
	}
	if err := removeCgroup(m.CgroupRoot); err != nil {
		errs = append(errs, fmt.Errorf("machine %s: %w", m.Name, err))
	}
	if mounts := mountsUnder(m.Dir); len(mounts) > 0 {
		errs = append(errs, fmt.Errorf("machine %s: mounts left on the host: %v", m.Name, mounts))
	} else if m.Dir != "" && os.Getenv("STAGE_KEEP_MACHINE_DIR") == "" {
		if err := os.RemoveAll(m.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	if m.usesHostDirs {
		if err := m.releaseHostDirs(); err != nil {
			errs = append(errs, fmt.Errorf("machine %s: removing the mount points it created on the host: %w", m.Name, err))
		}
	}
	m.usesHostDirs, m.holder = false, nil
	return errors.Join(errs...)
}

func mountsUnder(dir string) []string {
	data, _ := os.ReadFile("/proc/self/mountinfo")
	var found []string
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) > 4 && dir != "" && strings.HasPrefix(f[4], dir) {
			found = append(found, f[4])
		}
	}
	return found
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
