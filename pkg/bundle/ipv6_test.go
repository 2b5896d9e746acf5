package bundle

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckReachesAnIPv6APIServer runs the bundle's check against an API
// server address in brackets, as init stores IPv6 endpoints.
func TestCheckReachesAnIPv6APIServer(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer func() { _ = ln.Close() }()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	if err := exec.Command("ping", "-c", "1", "-W", "1", "127.0.0.1").Run(); err != nil {
		t.Skipf("ping does not work here: %v", err)
	}
	b := sample()
	b.APIServerEndpoint = ln.Addr().String()
	b.Network.Hub = netip.MustParseAddr("127.0.0.1")
	dir := t.TempDir()
	path := filepath.Join(dir, "b.sh")
	script, err := b.Render()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", path, "check")
	cmd.Env = append(os.Environ(), "STAGE_PREFIX="+dir, "STAGE_IFACE=lo")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "API server reachable at "+b.APIServerEndpoint) {
		t.Errorf("check with API server %s: %v\n%s", b.APIServerEndpoint, err, out)
	}
}
