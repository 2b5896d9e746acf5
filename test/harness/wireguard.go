package harness

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// StartWireGuardHub runs a VPN hub's wireguard-go in network namespace ns:
// interface iface configured from conf (`wg setconf`, as `kubectl stage
// hub-config` writes hub.conf) with address (CIDR) and forwarding on, so
// that it relays between its peers. The daemon stops when t ends (its
// device goes with it); Stop ends it earlier.
func StartWireGuardHub(t testing.TB, ns, iface, conf, address string) *Daemon {
	t.Helper()
	wg, err := StartDaemon("wireguard-go-"+iface, "ip",
		[]string{"netns", "exec", ns, "env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", iface},
		filepath.Join(t.TempDir(), "wireguard-go.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wg.Stop)
	inNS := func(args ...string) ([]byte, error) {
		return exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...).CombinedOutput()
	}
	WaitFor(t, "the hub's tunnel device "+iface, 20*time.Second, 50*time.Millisecond, func() bool {
		_, err := inNS("ip", "link", "show", iface)
		return err == nil
	})
	for _, args := range [][]string{
		{"wg", "setconf", iface, conf},
		{"ip", "address", "add", address, "dev", iface},
		{"ip", "link", "set", iface, "up"},
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
	} {
		if out, err := inNS(args...); err != nil {
			t.Fatalf("%v in %s: %v\n%s", args, ns, err, out)
		}
	}
	return wg
}
