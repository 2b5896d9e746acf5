package machine

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/hack/image/ociimage"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

// Two machines: each has its own hostname, /etc/hosts, containerd with an
// imported image, and nothing of them is left after Destroy.
func TestMachines(t *testing.T) {
	netns.RequireRoot(t)
	for _, bin := range []string{"containerd", "ctr", "nsenter", "unshare"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	pause := filepath.Join(dir, "pause")
	if out, err := exec.Command("go", "build", "-o", pause, filepath.Join(harness.RepoRoot(), "hack", "image", "pause")).CombinedOutput(); err != nil {
		t.Fatalf("building pause: %v\n%s", err, out)
	}
	const ref = "ghcr.io/kubectl-stage/pause:test"
	img, err := ociimage.Build(ociimage.Spec{Ref: ref, Binary: pause, User: "65535:65535"})
	if err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(dir, "pause.tar")
	if _, err := ociimage.WriteLayoutTar(tarball, ref, img); err != nil {
		t.Fatal(err)
	}

	tp := netns.New(t, 2)
	var machines []*Machine
	for i, name := range []string{"m-1", "m-2"} {
		m, err := Start(Config{Name: name, NetNS: tp.Sites[i], Hosts: map[string]string{name: "10.23.0.9"},
			PodSubnet: "10.244.9.0/24", Init: pause, SandboxImage: ref, Dir: filepath.Join(dir, name)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = m.Destroy() })
		machines = append(machines, m)
		if err := m.StartContainerd(ctx); err != nil {
			t.Fatal(err)
		}
		if err := m.ImportImage(ctx, tarball); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range machines {
		out, err := m.Run(ctx, "bash", "-c", "hostname; grep -c . /etc/hosts; ctr -n k8s.io images ls -q | grep -v ^sha256:; ls /sys/class/net | wc -l; ls /sys/fs/cgroup/memory"+m.CgroupRoot+" >/dev/null && echo cgroup")
		if err != nil {
			t.Fatalf("%s: %v\n%s", m.Name, err, out)
		}
		// sysfs shows the machine's own links: lo and its veth to the hub.
		want := m.Name + "\n3\n" + ref + "\n2\ncgroup\n"
		if out != want {
			t.Errorf("%s says %q, want %q", m.Name, out, want)
		}
		if host, _ := os.Hostname(); host == m.Name {
			t.Errorf("the machine renamed the host")
		}
		if ps := m.Processes(); len(ps) < 2 || m.ProcessMemory("containerd") == 0 {
			t.Errorf("%s runs %v, containerd using %d bytes", m.Name, ps, m.ProcessMemory("containerd"))
		}
	}
	for _, m := range machines {
		pids := m.Processes()
		if err := m.Destroy(); err != nil {
			t.Error(err)
		}
		for _, pid := range pids {
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				t.Errorf("%s: pid %d survived", m.Name, pid)
			}
		}
		if _, err := os.Stat("/sys/fs/cgroup/memory" + m.CgroupRoot); err == nil {
			t.Errorf("%s: cgroup left", m.Name)
		}
		if mounts := mountsUnder(m.Dir); len(mounts) > 0 || dirExists(m.Dir) {
			t.Errorf("%s: left %v / %s", m.Name, mounts, m.Dir)
		}
		// The machines left still have their private directories.
		for _, other := range machines {
			if other.usesHostDirs {
				checkPrivateDirs(t, ctx, other)
			}
		}
	}
	if out, _ := exec.Command("hostname").Output(); strings.HasPrefix(string(out), "m-") {
		t.Error("host name changed")
	}
}

func dirExists(dir string) bool { _, err := os.Stat(dir); return err == nil }

// checkPrivateDirs checks that what m writes to each of its private
// directories lands in its own copy, not the host's.
func checkPrivateDirs(t *testing.T, ctx context.Context, m *Machine) {
	t.Helper()
	for _, dir := range PrivateDirs {
		marker := filepath.Join(dir, "machine-test-marker")
		if out, err := m.Run(ctx, "sh", "-c", "echo "+m.Name+" > "+marker); err != nil {
			t.Errorf("%s: writing %s: %v: %s", m.Name, marker, err, out)
			continue
		}
		if got, err := os.ReadFile(m.Path(marker)); err != nil || string(got) != m.Name+"\n" {
			t.Errorf("%s: its %s is not its private copy any more (read %q, %v)", m.Name, dir, got, err)
		}
		if dirExists(marker) {
			t.Errorf("%s: %s landed on the host", m.Name, marker)
		}
	}
}
