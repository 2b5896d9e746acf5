package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

// tcpPort is where every node accepts TCP connections on its overlay
// address in this test.
const tcpPort = "7001"

// TestNetworkConditions proves the network conditions end to end, on
// each backend: the agents at three sites apply what `kubectl stage net
// partition|heal|apply` stores to their real tunnel devices (WireGuard
// interfaces of the mesh; OpenVPN tun devices, a-1 and b-1 reaching each
// other through the hub's openvpn), which ping, TCP and iperf3 between the
// namespaces measure, and `net` reports what they applied and measured;
// every rule is gone afterwards.
func TestNetworkConditions(t *testing.T) {
	netns.RequireRoot(t)
	for _, backend := range []vpn.Backend{vpn.WireGuard, vpn.OpenVPN} {
		t.Run(string(backend), func(t *testing.T) { networkConditions(t, backend) })
	}
}

func networkConditions(t *testing.T, backend vpn.Backend) {
	needs := map[vpn.Backend][]string{vpn.WireGuard: {"wg", "wireguard-go"}, vpn.OpenVPN: {"openvpn"}}[backend]
	for _, bin := range append(needs, "iperf3", "nft", "tc", "ping") {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	// Registered first, so it runs after every other cleanup.
	var leftovers []string
	t.Cleanup(func() { nothingLeft(t, leftovers...) })
	s := setUpOverlay(t, backend)
	// The agents (this test's build), and every daemon whose command line
	// names this test's files: the bundles' openvpn, the hub's.
	leftovers = []string{s.agentBin, s.dir + "/"}
	a, b, c := s.nodes["a-1"], s.nodes["b-1"], s.nodes["c-1"]
	all := []*node{a, b, c}
	s.badConditions()
	s.startWithAgents(all, a)
	// Every ordered pair of sites is measured.
	took := harness.WaitFor(t, "net to report round trips for every pair of sites", propagation, 500*time.Millisecond, func() bool {
		m := s.matrix()
		for _, p := range m.Sites {
			if p.Measured == nil || p.Measured.Sent == p.Measured.Lost {
				return false
			}
		}
		return len(m.Sites) == 6
	})
	t.Logf("agents started -> round trips measured for all 6 site pairs: %s", took)
	t.Logf("kubectl stage net -o wide:\n%s", s.stage("net", "-o", "wide"))

	// A split between a and b: each still reaches the hub and c.
	start := time.Now()
	s.stage("net", "partition", "site-a", "--from", "site-b")
	s.waitConditions("the partition is applied", s.conditionsVersion(), all)
	t.Logf("net partition -> rules in place at every site: %s", time.Since(start))
	for _, p := range s.matrix().Sites {
		split := p.From != "site-c" && p.To != "site-c"
		if p.Target.Partitioned() != split || (split && p.Applied != "yes") || (!split && p.Applied != "-") {
			t.Errorf("net reports %s -> %s as %s, applied %q %q; want the partition only between site-a and site-b, applied", p.From, p.To, p.Target, p.Applied, p.NotApplied)
		}
	}
	for _, pair := range [][2]*node{{a, b}, {b, a}} {
		if s.tp.Ping(pair[0].ns, pair[1].overlayIP) || s.tcpReaches(pair[0], pair[1].overlayIP) {
			t.Errorf("%s still reaches %s during the partition", pair[0].name, pair[1].name)
		}
	}
	for _, x := range []*node{a, b} {
		if !s.tp.Ping(x.ns, hubOverlay) || !s.tcpReachesAt(x, hubOverlay, "6443") {
			t.Errorf("%s does not reach the hub (ping and the API server) during the partition", x.name)
		}
		if !s.tp.Ping(x.ns, c.overlayIP) || !s.tcpReaches(x, c.overlayIP) || !s.tcpReaches(c, x.overlayIP) {
			t.Errorf("%s and c-1 do not reach each other during a partition between a and b", x.name)
		}
	}
	s.stage("net", "heal")
	s.waitConditions("the partition is healed", s.conditionsVersion(), all)
	if !s.tp.Ping(a.ns, b.overlayIP) || !s.tcpReaches(a, b.overlayIP) || !s.tcpReaches(b, a.overlayIP) {
		t.Error("a-1 and b-1 do not reach each other after net heal")
	}
	if rules := s.rules(a); rules != "" {
		t.Errorf("net heal left rules at a-1:\n%s", rules)
	}

	// A bandwidth limit, a loss rate, and a latency this kernel cannot apply.
	const targetMbit, lossPercent = 20.0, 20
	s.applyConditions("shaped.yaml", header()+`default: {latency: 50ms}
pairs:
- {from: site-a, to: site-b, bandwidth: 20mbit}
- {from: site-a, to: site-c, lossPercent: `+strconv.Itoa(lossPercent)+`}
`)
	s.waitConditions("the shaping is applied", s.conditionsVersion(), all)
	s.startIperfServer(b)
	got := s.iperf(a, b).mbps
	t.Logf("iperf3 a-1 -> b-1 under a %.0f Mbit/s limit: %.1f Mbit/s", targetMbit, got)
	if got < targetMbit*0.8 || got > targetMbit*1.2 {
		t.Errorf("a-1 -> b-1 moved %.1f Mbit/s, want %.0f Mbit/s within 20%%", got, targetMbit)
	}
	loss := s.pingLoss(a, c, 400)
	t.Logf("ping a-1 -> c-1 under %d%% loss (requests only): %.1f%% lost of 400", lossPercent, loss)
	// 400 probes at 20%: the standard deviation is 2 points; 8 points is 4 of them.
	if loss < lossPercent-8 || loss > lossPercent+8 {
		t.Errorf("a-1 -> c-1 lost %.1f%% of pings, want %d%% within 8 points", loss, lossPercent)
	}
	if loss := s.pingLoss(b, c, 100); loss > 5 {
		t.Errorf("b-1 -> c-1, which has no loss condition, lost %.1f%% of pings", loss)
	}
	m := s.matrix()
	for _, p := range m.Sites {
		wantReason := p.From[len("site-"):] + "-1: latency not applied: " + netcond.NetemMissing
		if p.Applied != "no" || len(p.NotApplied) != 1 || p.NotApplied[0] != wantReason {
			t.Errorf("net reports %s -> %s as applied %q, %q; want no, [%q]", p.From, p.To, p.Applied, p.NotApplied, wantReason)
		}
	}
	out := s.stage("net")
	for _, want := range []string{"latency 50ms, 20mbit", "latency 50ms, loss 20%", "latency not applied: kernel lacks sch_netem"} {
		if !strings.Contains(out, want) {
			t.Errorf("net lacks %q:\n%s", want, out)
		}
	}
	t.Logf("kubectl stage net:\n%s", out)

	// Reset removes every rule; a stopped agent removes its own.
	s.stage("net", "reset")
	s.waitConditions("the conditions are removed", "", all)
	for _, n := range all {
		if rules := s.rules(n); rules != "" {
			t.Errorf("net reset left rules at %s:\n%s", n.name, rules)
		}
	}
	s.applyConditions("partition.yaml", header()+"pairs: [{sites: [site-b, site-c], partition: true, bandwidth: 1mbit}]\n")
	s.waitConditions("a partition applied before the agents stop", s.conditionsVersion(), all)
	if s.rules(b) == "" {
		t.Fatal("b-1 has no rules after a partition: stopping its agent proves nothing")
	}
	for _, n := range all {
		s.stopAgent(n)
		if rules := s.rules(n); rules != "" {
			t.Errorf("the agent at %s left rules when it stopped:\n%s", n.name, rules)
		}
	}
}

// startWithAgents brings up the hub and the nodes' tunnels, registers their
// Nodes and starts every agent, each node accepting TCP on its overlay
// address; stale rules are left at crashed first, which its agent must
// remove when it starts.
func (s *stage) startWithAgents(all []*node, crashed *node) {
	t := s.t
	a, b, c := all[0], all[1], all[2]
	mesh := s.backend == vpn.WireGuard
	if mesh {
		s.startHub()
	} else {
		logPath := filepath.Join(s.dir, "openvpn-hub.log")
		harness.StartOpenVPNHub(t, s.tp.Hub, filepath.Join(s.dir, "hub"), logPath)
		t.Cleanup(func() { s.logOnFailure("openvpn hub", logPath) })
	}
	for _, n := range all {
		s.bundleUp(n)
	}
	s.forwardAPIServer()
	s.registerNodes(all...)
	if crashed != nil {
		s.leaveStaleRules(crashed)
	}
	if mesh {
		s.startHubAgent()
	}
	for _, n := range all {
		s.startNodeAgent(n)
		s.acceptTCP(n)
	}
	if mesh {
		s.waitPeers("the agents configure the mesh", map[*node][]*node{a: {b}, b: {a}, c: {}}, nil)
	} else {
		s.waitLogged("the agents see the star", all, "the overlay uses openvpn, a star in which every path goes through the hub: no WireGuard peers to keep")
	}
	s.waitConditions("the agents start with no conditions", "", all)
	if crashed != nil {
		if rules := s.rules(crashed); rules != "" {
			t.Errorf("the agent at %s did not remove the rules a previous agent left:\n%s", crashed.name, rules)
		}
	}
}

// nothingLeft checks that no namespace of this test, no wireguard-go of
// its interfaces, no child process and no process whose command line holds
// one of patterns (this test's agent build, its directory) still exists;
// the rules lived in the namespaces and were checked gone before. Other
// tests on the machine are not looked at.
func nothingLeft(t *testing.T, patterns ...string) {
	if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
		t.Errorf("namespaces left: %v %v", left, err)
	}
	checks := [][]string{{"-af", "wireguard-go " + ifaceName("")}, {"-aP", strconv.Itoa(os.Getpid())}}
	for _, p := range patterns {
		checks = append(checks, []string{"-af", p})
	}
	for _, args := range checks {
		harness.WaitFor(t, fmt.Sprintf("no process left (pgrep %s)", strings.Join(args, " ")), 10*time.Second, 100*time.Millisecond, func() bool {
			out, _ := exec.Command("pgrep", args...).Output()
			return len(out) == 0
		})
	}
}

// waitLogged waits until every node's agent logged line.
func (s *stage) waitLogged(what string, nodes []*node, line string) {
	s.t.Helper()
	harness.WaitFor(s.t, what, propagation, 100*time.Millisecond, func() bool {
		for _, n := range nodes {
			if log, _ := os.ReadFile(n.agentLog); !strings.Contains(string(log), line) {
				return false
			}
		}
		return true
	})
}

func header() string { return "apiVersion: " + netcond.APIVersion + "\nkind: " + netcond.Kind + "\n" }

// registerNodes creates the Node objects the nodes' kubelets would
// register, which the agents annotate with their status.
func (s *stage) registerNodes(nodes ...*node) {
	for _, n := range nodes {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.name, Labels: map[string]string{api.LabelSite: "site-" + n.name[:1]}}}
		if _, err := s.client.CoreV1().Nodes().Create(context.Background(), node, metav1.CreateOptions{}); err != nil {
			s.t.Fatal(err)
		}
	}
}

// badConditions: every bad document or partition is refused with its fix,
// and nothing is stored.
func (s *stage) badConditions() {
	t := s.t
	for _, tt := range []struct {
		name, doc, want string
	}{
		{"unknown site", "pairs: [{sites: [site-a, site-x], lossPercent: 1}]", `"site-x" is not a site: use one of site-a, site-b, site-c`},
		{"hub", "pairs: [{sites: [hub, site-a], partition: true}]", "the hub is not a site"},
		{"negative latency", "default: {latency: -10ms}", "is negative: a delay is 0 or more"},
		{"loss", "default: {lossPercent: 150}", "lossPercent 150 is outside 0-100"},
		{"bandwidth unit", "default: {bandwidth: '10'}", `bandwidth "10" has no unit`},
		{"typo", "default: {loss: 5}", `unknown field "loss"`},
	} {
		path := filepath.Join(s.dir, "bad.yaml")
		if err := os.WriteFile(path, []byte(header()+tt.doc+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		s.refused("net apply "+tt.name, tt.want, "net", "apply", "-f", path)
	}
	s.refused("partition of an unknown site", `"site-x" is not a site`, "net", "partition", "site-x")
	s.refused("partition of every site", "names every site, so there is no rest", "net", "partition", "site-a", "site-b", "site-c")
	s.refused("partition from itself", "cannot be partitioned from itself", "net", "partition", "site-a", "--from", "site-a")

	// Cutting every site from every other is allowed, and warned.
	path := filepath.Join(s.dir, "split.yaml")
	if err := os.WriteFile(path, []byte(header()+"default: {partition: true}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := harness.RunStage(context.Background(), s.cp.Kubeconfig, nil, "net", "apply", "-f", path)
	if err != nil || !strings.Contains(stderr, "warning: every site is cut off from every other") {
		t.Errorf("a total partition: %v, stderr %q; want it stored with a warning", err, stderr)
	}
	s.stage("net", "reset")
	if out := s.stage("net", "reset"); !strings.Contains(out, "nothing to reset") {
		t.Errorf("a second reset: %q", out)
	}
}

func (s *stage) refused(what, want string, args ...string) {
	s.t.Helper()
	_, _, err := harness.RunStage(context.Background(), s.cp.Kubeconfig, nil, args...)
	if err == nil || !strings.Contains(err.Error(), want) {
		s.t.Errorf("%s: %v, want an error containing %q", what, err, want)
	}
	if _, err := s.client.CoreV1().ConfigMaps(api.SystemNamespace).Get(context.Background(), netcond.ConfigMapName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		s.t.Errorf("%s stored conditions: %v", what, err)
	}
}

func (s *stage) applyConditions(name, doc string) {
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		s.t.Fatal(err)
	}
	s.stage("net", "apply", "-f", path)
}

func (s *stage) conditionsVersion() string {
	cm, err := s.client.CoreV1().ConfigMaps(api.SystemNamespace).Get(context.Background(), netcond.ConfigMapName, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	return cm.ResourceVersion
}

// waitConditions waits until every node's agent published that it applies
// the conditions at version, without error.
func (s *stage) waitConditions(what, version string, nodes []*node) {
	s.t.Helper()
	harness.WaitFor(s.t, what, propagation, 100*time.Millisecond, func() bool {
		for _, n := range nodes {
			st := s.netStatus(n)
			if st == nil || st.ConditionsVersion != version || st.Error != "" {
				return false
			}
		}
		return true
	})
}

func (s *stage) netStatus(n *node) *netcond.Status {
	node, err := s.client.CoreV1().Nodes().Get(context.Background(), n.name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	st, err := site.NetStatusOf(node)
	if err != nil {
		s.t.Fatal(err)
	}
	return st
}

func (s *stage) matrix() netcond.Matrix {
	var m netcond.Matrix
	if err := json.Unmarshal([]byte(s.stage("net", "-o", "json")), &m); err != nil {
		s.t.Fatal(err)
	}
	return m
}

// leaveStaleRules installs what a crashed agent would leave at n.
func (s *stage) leaveStaleRules(n *node) {
	for _, args := range [][]string{
		{"nft", "add table inet " + netcond.Table + "; add chain inet " + netcond.Table + " output { type filter hook output priority filter; policy accept; }"},
		{"tc", "qdisc", "add", "dev", n.iface, "root", "handle", netcond.RootHandle, "htb"},
	} {
		if out, err := s.tp.Run(n.ns, args[0], args[1:]...); err != nil {
			s.t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	if s.rules(n) == "" {
		s.t.Fatal("the stale rules are not seen: the leftover checks prove nothing")
	}
}

// rules is what the agent may have added at n: its nftables table and its
// root qdisc; "" when there is neither.
func (s *stage) rules(n *node) string {
	s.t.Helper()
	var found []string
	if out, err := s.tp.Run(n.ns, "nft", "list", "table", "inet", netcond.Table); err == nil {
		found = append(found, out)
	} else if !strings.Contains(out, "No such file or directory") {
		s.t.Fatalf("nft list table at %s: %v\n%s", n.name, err, out)
	}
	out, err := s.tp.Run(n.ns, "tc", "qdisc", "show", "dev", n.iface)
	if err != nil {
		s.t.Fatalf("tc qdisc show at %s: %v\n%s", n.name, err, out)
	}
	if strings.Contains(out, "qdisc htb "+netcond.RootHandle) {
		found = append(found, out)
	}
	return strings.Join(found, "")
}

// acceptTCP makes n accept TCP connections on its overlay address.
func (s *stage) acceptTCP(n *node) {
	u := strings.TrimPrefix(s.cp.URL(), "https://")
	ln, err := netns.Forward(n.ns, n.overlayIP+":"+tcpPort, u)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = ln.Close() })
}

func (s *stage) tcpReaches(from *node, addr string) bool { return s.tcpReachesAt(from, addr, tcpPort) }

// tcpReachesAt says whether a TCP connection from from's namespace to
// addr:port is established within two seconds.
func (s *stage) tcpReachesAt(from *node, addr, port string) bool {
	_, err := s.tp.Run(from.ns, "timeout", "2", "bash", "-c", "exec 3<>/dev/tcp/"+addr+"/"+port)
	return err == nil
}

var pingLoss = regexp.MustCompile(`([0-9.]+)% packet loss`)

// pingLoss is the share of count pings from x to y that got no answer.
func (s *stage) pingLoss(x, y *node, count int) float64 {
	s.t.Helper()
	out, _ := s.tp.Run(x.ns, "ping", "-q", "-c", strconv.Itoa(count), "-i", "0.01", "-W", "1", y.overlayIP)
	m := pingLoss.FindStringSubmatch(out)
	if m == nil {
		s.t.Fatalf("ping %s -> %s: no loss figure in:\n%s", x.name, y.name, out)
	}
	loss, _ := strconv.ParseFloat(m[1], 64)
	return loss
}

// stopAgent stops n's agent as its bundle's down step would (SIGTERM) and
// waits for it to exit.
func (s *stage) stopAgent(n *node) {
	s.t.Helper()
	data, err := os.ReadFile(filepath.Join(n.prefix, "etc", "kubectl-stage", "agent.pid"))
	if err != nil {
		s.t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		s.t.Fatal(err)
	}
	proc, err := os.FindProcess(pid)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		s.t.Fatalf("stopping the agent at %s: %v", n.name, err)
	}
	harness.WaitFor(s.t, "the agent at "+n.name+" to exit", propagation, 50*time.Millisecond, func() bool {
		return proc.Signal(syscall.Signal(0)) != nil
	})
}
