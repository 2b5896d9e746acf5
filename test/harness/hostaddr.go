package harness

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// HostAddresses puts n addresses on a veth interface of this host (no
// dummy module here; deleting one end removes both), removed when t ends.
// Kwok nodes at these addresses let the API server's pod proxy reach real
// processes listening on them for host-network pods: the API server
// refuses to proxy to loopback addresses. Needs root.
func HostAddresses(t testing.TB, n int) []string {
	t.Helper()
	link := fmt.Sprintf("stgadr%d", os.Getpid()%100000)
	run := func(args ...string) {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("link", "add", link, "type", "veth", "peer", "name", link+"p")
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", link).CombinedOutput(); err != nil {
			t.Errorf("removing %s: %v\n%s", link, err, out)
		}
	})
	run("link", "set", link, "up")
	var ips []string
	for i := range n {
		ip := fmt.Sprintf("10.77.%d.%d", os.Getpid()%250, i+2)
		run("addr", "add", ip+"/32", "dev", link)
		ips = append(ips, ip)
	}
	return ips
}

// Gossip is a node of the gossip example to start (./examples/gossip,
// built with Build): Name is its pod's, Addr the host:port it serves and
// advertises (its view at GET /peers), Seeds the peers it asks first.
type Gossip struct {
	Name, Site, Addr string
	Seeds            []string
}

// StartGossip runs g from the gossip binary bin, logging to logPath; it is
// stopped when t ends.
func StartGossip(t testing.TB, bin string, g Gossip, logPath string) *Daemon {
	t.Helper()
	env := []string{"STAGE_POD_NAME=" + g.Name, "STAGE_SITE=" + g.Site, "STAGE_ADVERTISE_ADDR=" + g.Addr}
	if len(g.Seeds) > 0 {
		env = append(env, "STAGE_PEER_SEEDS="+strings.Join(g.Seeds, ","))
	}
	d, err := StartDaemon(g.Name, "env", append(append([]string{"-i"}, env...), bin, "--interval=200ms"), logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}
