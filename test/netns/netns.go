// Package netns builds a small internet in network namespaces for VPN tests:
// a hub and several sites, each site wired to the hub by its own veth pair.
// The hub has a public address (198.18.0.1, from the benchmarking range) that
// every site routes to; sites have no route to each other, so whatever they
// exchange must cross the VPN.
package netns

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// HubAddress is the hub's "public" address, reachable from every site.
const HubAddress = "198.18.0.1"

// Topology is a hub namespace and site namespaces.
type Topology struct {
	Hub   string
	Sites []string
	// hostLink is RouteFromHost's link on this host's side, if made.
	hostLink string
	// SiteAddress is each site's underlay address, by site namespace.
	SiteAddress map[string]string
	// exchange is Exchange's namespace, if made.
	exchange string
}

// Available says whether namespaces can be built here, and if not, why.
func Available() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "needs root for network namespaces and tunnel devices: run as root (CI does)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return false, "ip (iproute2) is not installed: run hack/install-deps.sh"
	}
	return true, ""
}

// RequireRoot skips t unless it runs as root with ip(8) available.
func RequireRoot(t testing.TB) {
	t.Helper()
	if ok, why := Available(); !ok {
		t.Skip(why)
	}
}

// New creates the hub and n sites; everything is removed when t ends.
func New(t testing.TB, n int) *Topology {
	t.Helper()
	tp, err := Create(n)
	if tp != nil {
		t.Cleanup(tp.Destroy)
	}
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

// Create creates the hub and n sites; Destroy removes them. On error, what
// was created is already removed.
func Create(n int) (_ *Topology, err error) {
	id := processID()
	tp := &Topology{Hub: "stg-hub-" + id, SiteAddress: map[string]string{}}
	defer func() {
		if err != nil {
			tp.Destroy()
		}
	}()
	steps := [][]string{
		{"netns", "add", tp.Hub},
		{"-n", tp.Hub, "link", "set", "lo", "up"},
		{"-n", tp.Hub, "address", "add", HubAddress + "/32", "dev", "lo"},
	}
	for i := 1; i <= n; i++ {
		site := fmt.Sprintf("stg-s%d-%s", i, id)
		tp.Sites = append(tp.Sites, site)
		hubSide, siteSide := fmt.Sprintf("h%d-%s", i, id), fmt.Sprintf("s%d-%s", i, id)
		hubIP, siteIP := fmt.Sprintf("198.18.%d.1", i), fmt.Sprintf("198.18.%d.2", i)
		tp.SiteAddress[site] = siteIP
		steps = append(steps,
			[]string{"netns", "add", site},
			[]string{"-n", site, "link", "set", "lo", "up"},
			[]string{"link", "add", hubSide, "netns", tp.Hub, "type", "veth", "peer", "name", siteSide, "netns", site},
			[]string{"-n", tp.Hub, "address", "add", hubIP + "/24", "dev", hubSide},
			[]string{"-n", tp.Hub, "link", "set", hubSide, "up"},
			[]string{"-n", site, "address", "add", siteIP + "/24", "dev", siteSide},
			[]string{"-n", site, "link", "set", siteSide, "up"},
			[]string{"-n", site, "route", "add", HubAddress + "/32", "via", hubIP},
		)
	}
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return tp, fmt.Errorf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return tp, nil
}

// Host side and hub side of the link RouteFromHost makes, from the
// benchmarking range like the underlay.
const (
	hostLinkAddress = "198.19.0.1"
	hubLinkAddress  = "198.19.0.2"
)

// RouteFromHost routes cidr (the overlay) from this host through the hub, as
// a control plane at the hub reaches the nodes: a veth pair between the
// host and the hub, a host route for cidr over it, forwarding in the hub,
// and the hub masquerading the host's packets as its own, so nodes answer
// through their tunnels without knowing the link. Everything it creates goes
// away with the hub (Destroy deletes the host's side of the link, and the
// route over it, at once; the kernel frees a namespace's devices lazily).
func (tp *Topology) RouteFromHost(cidr string) error {
	id := strings.TrimPrefix(tp.Hub, "stg-hub-")
	hostSide, hubSide := "cp-"+id, "cph-"+id
	steps := [][]string{
		{"ip", "link", "add", hostSide, "type", "veth", "peer", "name", hubSide, "netns", tp.Hub},
		{"ip", "address", "add", hostLinkAddress + "/30", "dev", hostSide},
		{"ip", "link", "set", hostSide, "up"},
		{"ip", "-n", tp.Hub, "address", "add", hubLinkAddress + "/30", "dev", hubSide},
		{"ip", "-n", tp.Hub, "link", "set", hubSide, "up"},
		{"ip", "route", "add", cidr, "via", hubLinkAddress, "dev", hostSide},
		{"ip", "netns", "exec", tp.Hub, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"ip", "netns", "exec", tp.Hub, "nft", "add table ip stage-host; " +
			"add chain ip stage-host postrouting { type nat hook postrouting priority srcnat; }; " +
			"add rule ip stage-host postrouting ip saddr " + hostLinkAddress + " masquerade"},
	}
	tp.hostLink = hostSide
	for _, args := range steps {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// processID tells this process's namespaces from those of other test
// processes running at the same time.
func processID() string { return fmt.Sprintf("%d", os.Getpid()%100000) }

// Leftovers are the namespaces this process created that still exist.
func Leftovers() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, err
	}
	var left []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "stg-") && strings.HasSuffix(f[0], "-"+processID()) {
			left = append(left, f[0])
		}
	}
	return left, nil
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

// Destroy stops whatever still runs in the namespaces (daemonized VPN
// clients included) and deletes them, which deletes their links. Processes
// get SIGTERM first, so that they remove what they created outside the
// namespace (wireguard-go's socket in /var/run/wireguard), and SIGKILL after
// two seconds.
func (tp *Topology) Destroy() {
	namespaces := append([]string{tp.Hub}, tp.Sites...)
	if tp.exchange != "" {
		namespaces = append(namespaces, tp.exchange)
	}
	pids := func() []string {
		var all []string
		for _, ns := range namespaces {
			if out, err := exec.Command("ip", "netns", "pids", ns).Output(); err == nil {
				all = append(all, strings.Fields(string(out))...)
			}
		}
		return all
	}
	for _, pid := range pids() {
		_ = exec.Command("kill", "-TERM", pid).Run()
	}
	for deadline := time.Now().Add(2 * time.Second); len(pids()) > 0 && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	for _, pid := range pids() {
		_ = exec.Command("kill", "-9", pid).Run()
	}
	if tp.hostLink != "" {
		_ = exec.Command("ip", "link", "delete", tp.hostLink).Run()
	}
	for _, ns := range namespaces {
		_ = exec.Command("ip", "netns", "delete", ns).Run()
	}
}

// Forward listens on listen (host:port) inside namespace ns and relays each
// connection to target, dialled from this process's own namespace: a
// service of the host (an API server on loopback) appears at an address of
// the namespace (the hub's overlay address). Close the listener to stop.
func Forward(ns, listen, target string) (net.Listener, error) {
	ln, err := listenIn(ns, listen)
	if err != nil {
		return nil, err
	}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			go relay(in, target)
		}
	}()
	return ln, nil
}

func relay(in net.Conn, target string) {
	defer func() { _ = in.Close() }()
	out, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		return
	}
	defer func() { _ = out.Close() }()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}

// listenIn opens a TCP listener in namespace ns: a socket belongs to the
// namespace of the thread that creates it. The thread switches there and
// back; if it cannot switch back it stays locked and the runtime ends it.
func listenIn(ns, addr string) (net.Listener, error) {
	type result struct {
		ln  net.Listener
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer func() { _ = own.Close() }()
		target, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer func() { _ = target.Close() }()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("entering namespace %s: %w", ns, err)}
			return
		}
		ln, err := net.Listen("tcp", addr)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{ln: ln, err: err}
	}()
	r := <-done
	return r.ln, r.err
}

// ExchangeSubnet is the underlay that Exchange's sites share.
const ExchangeSubnet = "198.18.200.0/24"

// Exchange links sites to each other directly, not through the hub, as
// sites on the open internet are: a bridge in a namespace of its own (an
// exchange point that routes nothing) and, in each site, a link to it with
// the address 198.18.200.N, N the site's place in Sites. It returns those
// addresses by site; the exchange goes away with the topology.
func (tp *Topology) Exchange(sites ...string) (map[string]string, error) {
	id := processID()
	tp.exchange = "stg-ix-" + id
	steps := [][]string{
		{"netns", "add", tp.exchange},
		{"-n", tp.exchange, "link", "add", "ix", "type", "bridge"},
		{"-n", tp.exchange, "link", "set", "ix", "up"},
	}
	addresses := map[string]string{}
	for _, site := range sites {
		n := slices.Index(tp.Sites, site) + 1
		if n == 0 {
			return nil, fmt.Errorf("%s is not a site of this topology", site)
		}
		bridgeSide, siteSide := fmt.Sprintf("ixp%d-%s", n, id), fmt.Sprintf("ix%d-%s", n, id)
		addresses[site] = fmt.Sprintf("198.18.200.%d", n)
		steps = append(steps,
			[]string{"link", "add", bridgeSide, "netns", tp.exchange, "type", "veth", "peer", "name", siteSide, "netns", site},
			[]string{"-n", tp.exchange, "link", "set", bridgeSide, "master", "ix", "up"},
			[]string{"-n", site, "address", "add", addresses[site] + "/24", "dev", siteSide},
			[]string{"-n", site, "link", "set", siteSide, "up"},
		)
	}
	for _, args := range steps {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return addresses, nil
}

// BehindNAT puts a site behind a NAT as a home router does: what leaves
// through its link to the hub is masqueraded, and nothing comes in on that
// link unless it answers what the site sent (no inbound path). Packets the
// tunnel delivers are not affected. The rules go away with the site.
func (tp *Topology) BehindNAT(site string) error {
	return tp.uplinkRules(site, func(uplink string) string {
		return "add table ip stage-nat; " +
			"add chain ip stage-nat postrouting { type nat hook postrouting priority srcnat; }; " +
			"add rule ip stage-nat postrouting oifname " + uplink + " masquerade; " +
			"add chain ip stage-nat input { type filter hook input priority filter; }; " +
			"add rule ip stage-nat input iifname " + uplink + " ct state != { established, related } drop"
	})
}

// uplinkRules runs the nftables rules made for a site's link to the hub in
// the site's namespace.
func (tp *Topology) uplinkRules(site string, rules func(uplink string) string) error {
	n := slices.Index(tp.Sites, site) + 1
	if n == 0 {
		return fmt.Errorf("%s is not a site of this topology", site)
	}
	if out, err := tp.Run(site, "nft", rules(fmt.Sprintf("s%d-%s", n, processID()))); err != nil {
		return fmt.Errorf("nft in %s: %v\n%s", site, err, out)
	}
	return nil
}

// PublicAddress gives a site a public address it does not have itself, as
// a cloud machine behind 1:1 NAT has: what it sends to the hub leaves with
// public as source (ports kept), and the hub routes public back to it. Only
// the hub sees the address; the site's own interfaces keep theirs. The
// rules and the route go away with the site and the hub.
func (tp *Topology) PublicAddress(site, public string) error {
	if err := tp.uplinkRules(site, func(uplink string) string {
		return "add table ip stage-public; " +
			"add chain ip stage-public postrouting { type nat hook postrouting priority srcnat; }; " +
			"add rule ip stage-public postrouting oifname " + uplink + " ip saddr " + tp.SiteAddress[site] + " snat to " + public
	}); err != nil {
		return err
	}
	if out, err := exec.Command("ip", "-n", tp.Hub, "route", "add", public+"/32", "via", tp.SiteAddress[site]).CombinedOutput(); err != nil {
		return fmt.Errorf("ip route in %s: %v\n%s", tp.Hub, err, out)
	}
	return nil
}
