// Package netns builds a small internet in network namespaces for VPN tests:
// a hub and several sites, each site wired to the hub by its own veth pair.
// The hub has a public address (198.18.0.1, from the benchmarking range) that
// every site routes to; sites have no route to each other, so whatever they
// exchange must cross the VPN.
package netns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// HubAddress is the hub's "public" address, reachable from every site.
const HubAddress = "198.18.0.1"

// Topology is a hub namespace and site namespaces.
type Topology struct {
	Hub   string
	Sites []string
	// SiteAddress is each site's underlay address, by site namespace.
	SiteAddress map[string]string
}

// RequireRoot skips t unless it runs as root with ip(8) available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and tunnel devices: run as root (CI does)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("ip (iproute2) is not installed: run hack/install-deps.sh")
	}
}

// New creates the hub and n sites; everything is removed when t ends.
func New(t testing.TB, n int) *Topology {
	t.Helper()
	id := fmt.Sprintf("%d", os.Getpid()%100000)
	tp := &Topology{Hub: "stg-hub-" + id, SiteAddress: map[string]string{}}
	t.Cleanup(tp.destroy)
	tp.must(t, "ip", "netns", "add", tp.Hub)
	tp.must(t, "ip", "-n", tp.Hub, "link", "set", "lo", "up")
	tp.must(t, "ip", "-n", tp.Hub, "address", "add", HubAddress+"/32", "dev", "lo")
	for i := 1; i <= n; i++ {
		site := fmt.Sprintf("stg-s%d-%s", i, id)
		tp.Sites = append(tp.Sites, site)
		hubSide, siteSide := fmt.Sprintf("h%d-%s", i, id), fmt.Sprintf("s%d-%s", i, id)
		hubIP, siteIP := fmt.Sprintf("198.18.%d.1", i), fmt.Sprintf("198.18.%d.2", i)
		tp.SiteAddress[site] = siteIP
		tp.must(t, "ip", "netns", "add", site)
		tp.must(t, "ip", "-n", site, "link", "set", "lo", "up")
		tp.must(t, "ip", "link", "add", hubSide, "netns", tp.Hub, "type", "veth", "peer", "name", siteSide, "netns", site)
		tp.must(t, "ip", "-n", tp.Hub, "address", "add", hubIP+"/24", "dev", hubSide)
		tp.must(t, "ip", "-n", tp.Hub, "link", "set", hubSide, "up")
		tp.must(t, "ip", "-n", site, "address", "add", siteIP+"/24", "dev", siteSide)
		tp.must(t, "ip", "-n", site, "link", "set", siteSide, "up")
		tp.must(t, "ip", "-n", site, "route", "add", HubAddress+"/32", "via", hubIP)
	}
	return tp
}

// Command runs name with args inside namespace ns.
func (tp *Topology) Command(ns string, name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// Run runs a command in ns and returns its combined output.
func (tp *Topology) Run(ns string, name string, args ...string) (string, error) {
	out, err := tp.Command(ns, name, args...).CombinedOutput()
	return string(out), err
}

// Ping reports whether ns reaches addr within a second.
func (tp *Topology) Ping(ns, addr string) bool {
	_, err := tp.Run(ns, "ping", "-c", "1", "-W", "1", addr)
	return err == nil
}

func (tp *Topology) must(t testing.TB, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// destroy kills whatever still runs in the namespaces (daemonized VPN
// clients included) and deletes them, which deletes their links.
func (tp *Topology) destroy() {
	for _, ns := range append([]string{tp.Hub}, tp.Sites...) {
		if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
			for _, pid := range strings.Fields(string(out)) {
				_ = exec.Command("kill", "-9", pid).Run()
			}
		}
		_ = exec.Command("ip", "netns", "delete", ns).Run()
	}
}
