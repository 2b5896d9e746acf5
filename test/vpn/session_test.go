package vpn

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// cutWithin is how fast a revoked node must lose a live session.
const cutWithin = 10 * time.Second

// TestOpenVPNRevokedSessionIsCut: a node that left loses the session it
// holds as soon as hub-config runs on the hub, not at its next handshake
// (OpenVPN checks the CRL only then: an hour by default).
func TestOpenVPNRevokedSessionIsCut(t *testing.T) {
	o := setUp(t, "openvpn")
	startHub(t, o, "openvpn")
	o.revokeLiveSession(t, "ended the live sessions of nodes that left: b-1")
}

// TestWireGuardRevokedSessionIsCut: the same for WireGuard, where hub-config
// removes the peer from the live interface.
func TestWireGuardRevokedSessionIsCut(t *testing.T) {
	o := setUp(t, "wireguard")
	startHub(t, o, "wireguard")
	o.revokeLiveSession(t, "ended the live sessions of nodes that left: ", "--interface", "wghub")
}

func (o *overlay) revokeLiveSession(t *testing.T, wantOutput string, hubConfigArgs ...string) {
	t.Helper()
	a, b := "a-1", "b-1"
	for _, node := range []string{a, b} {
		if out, err := o.bundle(node, "vpn", 30); err != nil {
			t.Fatalf("bundle vpn at %s: %v\n%s", node, err, out)
		}
	}
	if !o.tp.Ping(o.site[b], o.ip[a]) {
		t.Fatalf("%s does not reach %s over the overlay", b, a)
	}
	stage(t, o.cp, "leave", b)
	out := stage(t, o.cp, append([]string{"hub-config", "--dir", o.hubDir}, hubConfigArgs...)...)
	if !strings.Contains(out, wantOutput) {
		t.Errorf("hub-config does not say it cut the session (%q):\n%s", wantOutput, out)
	}
	start := time.Now()
	reaches := func() bool { return o.tp.Ping(o.site[b], o.ip[a]) }
	if err := poll(cutWithin, 200*time.Millisecond, func() bool { return !reaches() }); err != nil {
		t.Fatalf("%s left, yet its live session still reaches %s after %s", b, a, cutWithin)
	}
	t.Logf("the live session of %s was cut %.1fs after hub-config", b, time.Since(start).Seconds())
	// It stays cut: the daemon at the site keeps retrying and is refused, so
	// no ping gets through for the whole window (a reconnect ends the poll).
	if err := poll(3*time.Second, 200*time.Millisecond, reaches); err == nil {
		t.Errorf("%s reconnected after it left", b)
	}
	if !o.tp.Ping(o.site[a], "10.23.0.1") {
		t.Errorf("%s lost the overlay when %s left", a, b)
	}
}

// TestOpenVPNBundleStepsAreIdempotent: vpn twice leaves the running tunnel
// alone, a changed configuration restarts it, down finds the daemon without
// its pid file and says the truth, and down --purge leaves no key behind.
func TestOpenVPNBundleStepsAreIdempotent(t *testing.T) {
	o := setUp(t, "openvpn")
	startHub(t, o, "openvpn")
	node := "a-1"
	conf := filepath.Join(o.prefix[node], "etc", "kubectl-stage", "openvpn.conf")
	out, err := o.bundle(node, "vpn", 30)
	if err != nil {
		t.Fatalf("bundle vpn: %v\n%s", err, out)
	}
	first := daemons(t, "openvpn", conf)
	if len(first) != 1 {
		t.Fatalf("openvpn daemons for %s after vpn: %v", conf, first)
	}

	out, err = o.bundle(node, "vpn", 30)
	if err != nil || !strings.Contains(out, "openvpn already runs this configuration") {
		t.Errorf("second vpn: %v\n%s", err, out)
	}
	if got := daemons(t, "openvpn", conf); len(got) != 1 || got[0] != first[0] {
		t.Fatalf("after a second vpn the daemons are %v, want %v only", got, first)
	}
	if !o.tp.Ping(o.site[node], "10.23.0.1") {
		t.Fatal("the second vpn broke the tunnel")
	}

	// A changed configuration (an older bundle's, say) is restarted.
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("# changed\n")
	_ = f.Close()
	out, err = o.bundle(node, "vpn", 30)
	if err != nil || !strings.Contains(out, "runs another configuration: restarting it") {
		t.Errorf("vpn with a changed configuration: %v\n%s", err, out)
	}
	second := daemons(t, "openvpn", conf)
	if len(second) != 1 || second[0] == first[0] {
		t.Fatalf("after a changed configuration the daemons are %v (before: %v), want one new", second, first)
	}

	// down without the pid file still finds the daemon.
	if err := os.Remove(filepath.Join(o.prefix[node], "etc", "kubectl-stage", "openvpn.pid")); err != nil {
		t.Fatal(err)
	}
	out, err = o.bundle(node, "down", 1)
	if err != nil || !strings.Contains(out, "tunnel stopped: openvpn (pid "+strconv.Itoa(second[0])+") stopped") {
		t.Errorf("down without pid file: %v\n%s", err, out)
	}
	if got := daemons(t, "openvpn", conf); len(got) != 0 {
		t.Errorf("openvpn still runs after down: %v", got)
	}
	if _, err := o.tp.Run(o.site[node], "ip", "link", "show", "wg"+node); err == nil {
		t.Errorf("the tunnel device is still there after down")
	}
	out, err = o.bundle(node, "down", 1)
	if err != nil || !strings.Contains(out, "no tunnel was running") {
		t.Errorf("second down: %v\n%s", err, out)
	}
	o.purge(t, node)
}

// TestWireGuardBundleStepsAreIdempotent: the same for WireGuard (wireguard-go).
func TestWireGuardBundleStepsAreIdempotent(t *testing.T) {
	o := setUp(t, "wireguard")
	startHub(t, o, "wireguard")
	node, iface := "a-1", "wga-1"
	out, err := o.bundle(node, "vpn", 30)
	if err != nil {
		t.Fatalf("bundle vpn: %v\n%s", err, out)
	}
	first := daemons(t, "wireguard-go", iface)
	out, err = o.bundle(node, "vpn", 30)
	if err != nil || !strings.Contains(out, "already up with this configuration") {
		t.Errorf("second vpn: %v\n%s", err, out)
	}
	if got := daemons(t, "wireguard-go", iface); len(got) != 1 || len(first) != 1 || got[0] != first[0] {
		t.Errorf("wireguard-go daemons %v, then %v: want the same one", first, got)
	}
	if !o.tp.Ping(o.site[node], "10.23.0.1") {
		t.Fatal("the second vpn broke the tunnel")
	}
	out, err = o.bundle(node, "down", 1)
	if err != nil || !strings.Contains(out, "tunnel stopped") || !strings.Contains(out, iface+" is gone") {
		t.Errorf("down: %v\n%s", err, out)
	}
	if got := daemons(t, "wireguard-go", iface); len(got) != 0 {
		t.Errorf("wireguard-go still runs after down: %v", got)
	}
	o.purge(t, node)
}

// purge runs down --purge and checks that nothing the bundle installed is
// left, and that it names the secrets that remain.
func (o *overlay) purge(t *testing.T, node string) {
	t.Helper()
	cmd := o.tp.Command(o.site[node], "bash", o.bundles[node], "down", "--purge")
	cmd.Env = append(os.Environ(), "STAGE_PREFIX="+o.prefix[node], "STAGE_WAIT=1", "STAGE_IFACE=wg"+node)
	raw, err := cmd.CombinedOutput()
	out := string(raw)
	if err != nil || !strings.Contains(out, "secrets this bundle did not remove") || !strings.Contains(out, o.bundles[node]) {
		t.Errorf("down --purge: %v\n%s", err, out)
	}
	var left []string
	_ = filepath.Walk(o.prefix[node], func(path string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			left = append(left, path)
		}
		return nil
	})
	if len(left) > 0 {
		t.Errorf("down --purge left %v", left)
	}
}

// daemons returns the pids of the processes named name with arg among their
// arguments.
func daemons(t *testing.T, name, arg string) []int {
	t.Helper()
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(d, "cmdline"))
		if err != nil {
			continue
		}
		for _, a := range strings.Split(string(cmdline), "\x00") {
			if a == arg {
				pid, _ := strconv.Atoi(filepath.Base(d))
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}
