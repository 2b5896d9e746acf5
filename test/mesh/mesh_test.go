// Package mesh proves the WireGuard mesh end to end: real wireguard-go
// daemons at a hub and five sites in network namespaces, brought up by the
// join bundles, and the node agents (kubectl-stage-agent) configuring their
// peers from the cluster, against a real API server reached over the
// overlay.
package mesh

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

const (
	hubOverlay  = "10.23.0.1"
	overlayCIDR = "10.23.0.0/16"
	listenPort  = "51821"
	iperfPort   = "5201"
	// propagation bounds how long a join or leave may take to reach every
	// interface before the test fails; the time taken is measured and logged.
	propagation = 30 * time.Second
)

// node is an enrolled node at its site.
type node struct {
	name, ns, iface string
	bundle, prefix  string
	overlayIP       string
	endpoint        string
	key             string
	agentLog        string
}

type stage struct {
	t            testing.TB
	cp           *harness.ControlPlane
	client       kubernetes.Interface
	tp           *netns.Topology
	dir          string
	hubIface     string
	agentBin     string
	hubPublicKey string
	// backend is the overlay's VPN: the mesh's WireGuard, or OpenVPN's star.
	backend vpn.Backend
	nodes   map[string]*node
}

func TestMeshOverlay(t *testing.T) {
	netns.RequireRoot(t)
	for _, bin := range []string{"wg", "wireguard-go", "iperf3", "nft", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s is not installed: run hack/install-deps.sh", bin)
		}
	}
	s := setUp(t)
	a, b, c := s.nodes["a-1"], s.nodes["b-1"], s.nodes["c-1"]

	// The underlay: a and b reach each other through the exchange, not
	// through the hub; c reaches only the hub, and nothing reaches c.
	if !s.tp.Ping(a.ns, strings.Split(b.endpoint, ":")[0]) {
		t.Fatal("a-1 does not reach b-1's underlay address: no direct path to prove")
	}
	if s.tp.Ping(c.ns, strings.Split(a.endpoint, ":")[0]) {
		t.Fatal("c-1 reaches a-1's underlay directly: c is not isolated, the test proves nothing")
	}
	if !s.tp.Ping(c.ns, netns.HubAddress) || s.tp.Ping(s.tp.Hub, s.tp.SiteAddress[c.ns]) {
		t.Fatal("c-1 is not behind a NAT: it must reach the hub while the hub cannot reach it")
	}
	if s.tp.Ping(a.ns, b.overlayIP) {
		t.Fatal("a-1 reaches b-1's overlay address before any tunnel: the test proves nothing")
	}

	hub := s.startHub()
	for _, n := range []*node{a, b, c} {
		s.bundleUp(n)
	}
	s.forwardAPIServer()

	// The star, before any agent runs: a-1 and b-1 talk through the hub.
	s.startIperfServer(b)
	s.startIperfServer(c)
	starBefore := s.relayedBytes(a, b)
	star := s.iperf(a, b)
	if relayed := s.relayedBytes(a, b) - starBefore; relayed < star.bytes {
		t.Fatalf("without agents a-1 -> b-1 should cross the hub: it relayed %d bytes of %d", relayed, star.bytes)
	}
	t.Logf("throughput a-1 -> b-1 through the hub (star): %.0f Mbit/s", star.mbps)

	// The mesh: the agents give a-1 and b-1 each other as peers.
	s.startHubAgent()
	for _, n := range []*node{a, b, c} {
		s.startNodeAgent(n)
	}
	took := s.waitPeers("the agents configure the mesh", map[*node][]*node{a: {b}, b: {a}, c: {}}, nil)
	t.Logf("agents started -> mesh configured on every node: %s", took)
	s.waitHubPeers(a, b, c)

	meshBefore := s.relayedBytes(a, b)
	direct := s.iperf(a, b)
	if relayed := s.relayedBytes(a, b) - meshBefore; relayed != 0 {
		t.Fatalf("a-1 -> b-1 should go directly: the hub relayed %d bytes of theirs", relayed)
	}
	if rx := s.peer(b, a.key).RxBytes; rx < direct.bytes {
		t.Errorf("b-1 received %d bytes from its direct peer a-1, less than iperf's %d", rx, direct.bytes)
	}
	t.Logf("throughput a-1 -> b-1 direct (mesh): %.0f Mbit/s", direct.mbps)

	// c is behind NAT: its pairs go through the hub, and work.
	natBefore := s.relayedBytes(a, c)
	relayedToC := s.iperf(a, c)
	if relayed := s.relayedBytes(a, c) - natBefore; relayed < relayedToC.bytes {
		t.Fatalf("a-1 -> c-1 should go through the hub: it relayed %d bytes of %d", relayed, relayedToC.bytes)
	}
	t.Logf("throughput a-1 -> c-1 through the hub (c behind NAT): %.0f Mbit/s", relayedToC.mbps)
	if !s.tp.Ping(b.ns, c.overlayIP) || !s.tp.Ping(c.ns, b.overlayIP) {
		t.Error("b-1 and c-1 do not reach each other through the hub")
	}

	out := s.stage("net", "paths")
	for _, want := range []string{"overlay: mesh", "a-1 ", "direct", "c-1 has no endpoint other sites can reach (behind NAT)"} {
		if !strings.Contains(out, want) {
			t.Errorf("net paths lacks %q:\n%s", want, out)
		}
	}
	s.checkPathsJSON(map[string]string{"a-1.b-1": mesh.Direct, "a-1.c-1": mesh.Relayed, "b-1.c-1": mesh.Relayed})

	// A node that joins later is a's direct peer without a's bundle re-run.
	start := time.Now()
	d := s.join("d-1", s.tp.Sites[3], s.exchangeEndpoint(s.tp.Sites[3]))
	took = s.waitPeers("d-1's join reaches every interface", map[*node][]*node{a: {b, d}, b: {a, d}, c: {}}, nil)
	s.waitHubPeers(a, b, c, d)
	t.Logf("join d-1 -> every interface has d-1's key (a-1, b-1, hub): %s after join returned (%s with join)", took, time.Since(start))
	s.bundleUp(d)
	s.startNodeAgent(d)
	s.waitPeers("d-1's own agent", map[*node][]*node{d: {a, b}}, nil)
	// a-1's agent probes d-1 from its join on, before d-1's tunnel is up, so
	// a-1's WireGuard retries its handshake every 5s: the first ping may wait
	// for the next attempt (or for d-1's own first probe).
	harness.WaitFor(t, "a-1 to reach d-1, which joined later", propagation, 100*time.Millisecond, func() bool { return s.tp.Ping(a.ns, d.overlayIP) })
	if s.peer(a, d.key).LatestHandshake.IsZero() {
		t.Error("a-1 reached d-1 but never shook hands with it directly")
	}

	// Leave: b's key goes from every interface, and a no longer reaches b.
	start = time.Now()
	s.stage("leave", "b-1")
	took = s.waitPeers("b-1's leave reaches every interface", map[*node][]*node{a: {d}, c: {}, d: {a}}, []string{b.key})
	s.waitHubPeers(a, c, d)
	t.Logf("leave b-1 -> b-1's key gone from every interface (a-1, c-1, d-1, hub): %s after leave returned (%s with leave)", took, time.Since(start))
	if s.tp.Ping(a.ns, b.overlayIP) {
		t.Error("a-1 still reaches b-1, which left")
	}
	if out := s.bundle(b, "down"); !strings.Contains(out, "node agent (pid") || !strings.Contains(out, ") stopped") {
		t.Errorf("bundle down at b-1 did not stop its agent:\n%s", out)
	}
	if !s.tp.Ping(a.ns, d.overlayIP) || !s.tp.Ping(a.ns, c.overlayIP) {
		t.Error("a-1 lost d-1 or c-1 when b-1 left")
	}

	s.badInput(a, d)
	s.autoEndpoint(a, c, d)

	// The hub goes away: direct paths keep working, relayed ones stop.
	hub.Stop()
	if s.tp.Ping(a.ns, hubOverlay) {
		t.Fatal("the hub still answers after its WireGuard stopped")
	}
	if !s.tp.Ping(a.ns, d.overlayIP) || !s.tp.Ping(d.ns, a.overlayIP) {
		t.Error("with the hub down, the direct path a-1 <-> d-1 stopped working")
	}
	if s.tp.Ping(a.ns, c.overlayIP) {
		t.Error("with the hub down, a-1 still reaches c-1, whose path is relayed: the test's relay is not the hub")
	}
}

// autoEndpoint: a node joined with --endpoint auto, whose public address
// only the hub sees, is reached directly where the hub observes it; when
// its port changes (a NAT rebinding, a restart), the others follow within
// seconds, with none of its packets reaching them that WireGuard's own
// roaming could learn from.
func (s *stage) autoEndpoint(a, c, d *node) {
	t := s.t
	e := s.join("e-1", s.tp.Sites[4], mesh.EndpointAuto)
	public := s.exchangeAddress(e.ns)
	if err := s.tp.PublicAddress(e.ns, public); err != nil {
		t.Fatal(err)
	}
	s.checkPathsJSON(map[string]string{"a-1.c-1": mesh.Relayed, "a-1.d-1": mesh.Direct, "a-1.e-1": mesh.Relayed,
		"c-1.d-1": mesh.Relayed, "c-1.e-1": mesh.Relayed, "d-1.e-1": mesh.Relayed})
	start := time.Now()
	s.bundleUp(e)
	s.startNodeAgent(e)
	e.endpoint = public + ":" + s.listenPort(e)
	took := s.waitPeers("the hub's observation of e-1 reaches every interface", map[*node][]*node{a: {d, e}, c: {}, d: {a, e}, e: {a, d}}, nil)
	t.Logf("e-1 (--endpoint auto) up -> every node's peer at the endpoint the hub observed: %s (%s since its bundle ran)", took, time.Since(start))
	s.checkPathsJSON(map[string]string{"a-1.c-1": mesh.Relayed, "a-1.d-1": mesh.Direct, "a-1.e-1": mesh.Direct,
		"c-1.d-1": mesh.Relayed, "c-1.e-1": mesh.Relayed, "d-1.e-1": mesh.Direct})
	s.checkDirect(a, e)
	if line := s.siteLine("site-a"); !strings.HasSuffix(line, " direct=site-d,site-e relayed=site-c") {
		t.Errorf("sites -o wide, site-a: %q, want its paths direct=site-d,site-e relayed=site-c", line)
	}

	// The rebinding: e's packets now come from another port. Only the hub
	// hears of it: e's packets to a and d (the agents' probes, which would
	// let their WireGuard learn the new port by itself) are dropped until
	// both have the new endpoint from the hub's observation.
	mute := "add table ip stgmesh-mute; add chain ip stgmesh-mute output { type filter hook output priority filter; }; " +
		"add rule ip stgmesh-mute output ip daddr { " + s.exchangeAddress(a.ns) + ", " + s.exchangeAddress(d.ns) + " } udp dport " + listenPort + " drop"
	if out, err := s.tp.Run(e.ns, "nft", mute); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	const newPort = "40123"
	if out, err := s.tp.Run(e.ns, "wg", "set", e.iface, "listen-port", newPort); err != nil {
		t.Fatalf("wg set listen-port: %v\n%s", err, out)
	}
	start = time.Now()
	if !s.tp.Ping(e.ns, hubOverlay) {
		t.Fatal("e-1 lost the hub when its port changed")
	}
	e.endpoint = public + ":" + newPort
	s.waitPeers("e-1's new endpoint reaches every interface", map[*node][]*node{a: {d, e}, d: {a, e}}, nil)
	t.Logf("e-1's port changed -> a-1 and d-1 send to the new one: %s", time.Since(start))
	if out, err := s.tp.Run(e.ns, "nft", "delete table ip stgmesh-mute"); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
	s.checkDirect(a, e)
}

// listenPort is the UDP port n's WireGuard listens on.
func (s *stage) listenPort(n *node) string {
	s.t.Helper()
	out, err := s.tp.Run(n.ns, "wg", "show", n.iface, "listen-port")
	if err != nil {
		s.t.Fatalf("wg show listen-port at %s: %v\n%s", n.name, err, out)
	}
	return strings.TrimSpace(out)
}

// checkDirect waits until x reaches y (the agents' probes may have sent
// x's WireGuard into its 5s handshake retry before y's tunnel was up), then
// pings y from x again and checks that the hub relayed none of it.
func (s *stage) checkDirect(x, y *node) {
	s.t.Helper()
	harness.WaitFor(s.t, x.name+" to reach "+y.name, propagation, 100*time.Millisecond, func() bool { return s.tp.Ping(x.ns, y.overlayIP) })
	before := s.relayedBytes(x, y)
	if !s.tp.Ping(x.ns, y.overlayIP) {
		s.t.Fatalf("%s does not reach %s", x.name, y.name)
	}
	if relayed := s.relayedBytes(x, y) - before; relayed != 0 {
		s.t.Errorf("%s -> %s should go directly: the hub relayed %d bytes of theirs", x.name, y.name, relayed)
	}
}

// siteLine is a site's line of `sites -o wide`, spaces squeezed.
func (s *stage) siteLine(name string) string {
	for _, line := range strings.Split(s.stage("sites", "-o", "wide"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return strings.Join(f, " ")
		}
	}
	s.t.Fatalf("sites -o wide has no line for %s", name)
	return ""
}

// badInput: a malformed endpoint and an endpoint already declared are
// refused at join and leave nothing behind; records forged to claim
// another node's address or key are refused by every agent.
func (s *stage) badInput(a, d *node) {
	t := s.t
	for _, tt := range []struct{ endpoint, want string }{
		{"198.18.200.9", `"198.18.200.9" is not HOST:PORT`},
		{"198.18.200.9:0", "port must be a number 1-65535"},
		{a.endpoint, "node a-1 already declared the endpoint " + a.endpoint},
	} {
		_, stderr, err := harness.RunStage(context.Background(), s.cp.Kubeconfig, nil, "join", "site-x", "--node", "x-1", "--endpoint", tt.endpoint, "-f", filepath.Join(s.dir, "x-1.join.sh"))
		if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "--endpoint") {
			t.Errorf("join --endpoint %q: %v (stderr %s), want an error containing %q naming --endpoint", tt.endpoint, err, stderr, tt.want)
		}
		if _, err := s.client.CoreV1().ConfigMaps(api.SystemNamespace).Get(context.Background(), api.NodePrefix+"x-1", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("a refused join left a record behind: %v", err)
		}
		if _, err := os.Stat(filepath.Join(s.dir, "x-1.join.sh")); !os.IsNotExist(err) {
			t.Errorf("a refused join wrote a bundle: %v", err)
		}
	}

	stolenAddress := s.forge("evil-ip", a.overlayIP, newKey(t), "198.18.200.9:"+listenPort)
	s.forge("evil-key", "10.23.0.99", d.key, "198.18.200.8:"+listenPort)
	for _, want := range []string{
		"refusing node evil-ip: claims overlay address " + a.overlayIP + ", which a-1 holds",
		"refusing node evil-key: claims the WireGuard public key of d-1",
	} {
		harness.WaitFor(t, "a-1's agent to refuse a forged record", propagation, 50*time.Millisecond, func() bool {
			log, _ := os.ReadFile(a.agentLog)
			return strings.Contains(string(log), want)
		})
	}
	s.waitPeers("the interfaces to stay as they were", map[*node][]*node{a: {d}, d: {a}}, []string{stolenAddress})
	_, stderr, err := harness.RunStage(context.Background(), s.cp.Kubeconfig, nil, "net", "paths")
	if err != nil || !strings.Contains(stderr, "warning: the node agents refuse node evil-ip: claims overlay address "+a.overlayIP+", which a-1 holds") {
		t.Errorf("net paths does not name the refused record: %v\n%s", err, stderr)
	}
	for _, name := range []string{"evil-ip", "evil-key"} {
		if err := s.client.CoreV1().ConfigMaps(api.SystemNamespace).Delete(context.Background(), api.NodePrefix+name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func setUp(t testing.TB) *stage { return setUpOverlay(t, vpn.WireGuard) }

// setUpOverlay initializes a staging cluster on backend and enrolls a-1,
// b-1 and c-1 at the first three sites; on WireGuard a-1 and b-1 declare
// their exchange endpoints, while OpenVPN, a star, has none to declare.
func setUpOverlay(t testing.TB, backend vpn.Backend) *stage {
	cp := harness.StartForTest(t, harness.Options{ServingIPs: []net.IP{net.ParseIP(hubOverlay)}})
	if err := cp.KubeadmBootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", cp.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// The waits poll several objects every 100ms: client-go's default 5
	// requests a second would make them measure its throttling.
	cfg.QPS, cfg.Burst = 100, 200
	s := &stage{t: t, cp: cp, client: kubernetes.NewForConfigOrDie(cfg), tp: netns.New(t, 5), dir: t.TempDir(),
		hubIface: ifaceName("h"), agentBin: harness.Build(t, "./cmd/kubectl-stage-agent"), nodes: map[string]*node{}, backend: backend}
	// Sites a, b, d (the later join) and e reach each other directly; c
	// sits behind a NAT; e's public address is one only the hub sees (1:1
	// NAT), so it joins with --endpoint auto.
	if _, err := s.tp.Exchange(s.tp.Sites[0], s.tp.Sites[1], s.tp.Sites[3], s.tp.Sites[4]); err != nil {
		t.Fatal(err)
	}
	if err := s.tp.BehindNAT(s.tp.Sites[2]); err != nil {
		t.Fatal(err)
	}
	s.stage("init", "--vpn", string(backend), "--hub-endpoint", netns.HubAddress, "--pod-cidr", harness.PodCIDR, "--service-cidr", harness.ServiceCIDR)
	endpoint := func(ns string) string {
		if backend != vpn.WireGuard {
			return ""
		}
		return s.exchangeEndpoint(ns)
	}
	s.join("a-1", s.tp.Sites[0], endpoint(s.tp.Sites[0]))
	s.join("b-1", s.tp.Sites[1], endpoint(s.tp.Sites[1]))
	s.join("c-1", s.tp.Sites[2], "")
	s.stage("hub-config", "--dir", filepath.Join(s.dir, "hub"))
	return s
}

// ifaceName is a WireGuard device name unique on this host: wireguard-go's
// control sockets in /var/run/wireguard are shared by every namespace.
func ifaceName(who string) string { return fmt.Sprintf("stgm%d%s", os.Getpid()%100000, who) }

func (s *stage) stage(args ...string) string {
	s.t.Helper()
	out, stderr, err := harness.RunStage(context.Background(), s.cp.Kubeconfig, nil, args...)
	if err != nil {
		s.t.Fatalf("kubectl stage %v: %v\n%s%s", args, err, out, stderr)
	}
	return out
}

// exchangeAddress is a site's address on the exchange, where other sites
// reach it.
func (s *stage) exchangeAddress(ns string) string {
	return fmt.Sprintf("198.18.200.%d", slices.Index(s.tp.Sites, ns)+1)
}

// exchangeEndpoint is the endpoint a site's node declares: its address on
// the exchange.
func (s *stage) exchangeEndpoint(ns string) string { return s.exchangeAddress(ns) + ":" + listenPort }

// join enrolls a node at a site namespace with --endpoint endpoint (none
// when empty). An auto node's endpoint is set once the hub observed it.
func (s *stage) join(name, ns, endpoint string) *node {
	n := &node{name: name, ns: ns, iface: ifaceName(name[:1]), bundle: filepath.Join(s.dir, name+".join.sh"), prefix: filepath.Join(s.dir, name+"-root")}
	args := []string{"join", "site-" + name[:1], "--node", name, "-f", n.bundle, "-o", "json"}
	if endpoint != "" {
		n.endpoint = endpoint
		args = append(args, "--endpoint", n.endpoint)
	}
	var enrolled struct {
		Spec struct {
			OverlayIP string `json:"overlayIP"`
			Endpoint  string `json:"endpoint"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(s.stage(args...)), &enrolled); err != nil {
		s.t.Fatal(err)
	}
	if enrolled.Spec.Endpoint != n.endpoint {
		s.t.Fatalf("join printed endpoint %q, want %q", enrolled.Spec.Endpoint, n.endpoint)
	}
	n.overlayIP = enrolled.Spec.OverlayIP
	if n.endpoint == mesh.EndpointAuto {
		n.endpoint = ""
	}
	cm, err := s.client.CoreV1().ConfigMaps(api.SystemNamespace).Get(context.Background(), api.NodePrefix+name, metav1.GetOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	var rec struct {
		Key string `json:"wireGuardPublicKey"`
	}
	if err := json.Unmarshal([]byte(cm.Data["record"]), &rec); err != nil {
		s.t.Fatal(err)
	}
	n.key = rec.Key
	s.nodes[name] = n
	return n
}

// bundleUp runs the node's bundle's vpn step at its site, as the person
// there would.
func (s *stage) bundleUp(n *node) { s.bundle(n, "vpn") }

// bundle runs a step of n's bundle at its site, with this checkout's agent.
func (s *stage) bundle(n *node, step string) string {
	s.t.Helper()
	cmd := s.tp.Command(n.ns, "bash", n.bundle, step)
	cmd.Env = append(os.Environ(), "STAGE_PREFIX="+n.prefix, "STAGE_WAIT=30", "STAGE_IFACE="+n.iface, "STAGE_AGENT="+s.agentBin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("bundle %s at %s: %v\n%s", step, n.name, err, out)
	}
	return string(out)
}

// startHub runs the hub's wireguard-go with the configuration hub-config
// wrote, forwarding between nodes, with one nftables counter per node pair
// of what it relays.
func (s *stage) startHub() *harness.Daemon {
	t := s.t
	wg := harness.StartWireGuardHub(t, s.tp.Hub, s.hubIface, filepath.Join(s.dir, "hub", "hub.conf"), hubOverlay+"/16")
	steps := [][]string{
		{"nft", "add table ip stgmesh; add chain ip stgmesh forward { type filter hook forward priority filter; policy accept; }"},
	}
	for i := 2; i <= 6; i++ {
		for j := i + 1; j <= 6; j++ {
			x, y := fmt.Sprintf("10.23.0.%d", i), fmt.Sprintf("10.23.0.%d", j)
			steps = append(steps, []string{"nft", fmt.Sprintf(`add rule ip stgmesh forward ip saddr { %[1]s, %[2]s } ip daddr { %[1]s, %[2]s } counter comment "%[1]s-%[2]s"`, x, y)})
		}
	}
	for _, args := range steps {
		if out, err := s.tp.Run(s.tp.Hub, args[0], args[1:]...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	return wg
}

var counterLine = regexp.MustCompile(`counter packets \d+ bytes (\d+) comment "([0-9.]+-[0-9.]+)"`)

// relayedBytes is how many bytes of the pair's traffic the hub forwarded.
func (s *stage) relayedBytes(x, y *node) int64 {
	s.t.Helper()
	out, err := s.tp.Run(s.tp.Hub, "nft", "list", "chain", "ip", "stgmesh", "forward")
	if err != nil {
		s.t.Fatalf("nft list chain: %v\n%s", err, out)
	}
	for _, m := range counterLine.FindAllStringSubmatch(out, -1) {
		if m[2] == x.overlayIP+"-"+y.overlayIP || m[2] == y.overlayIP+"-"+x.overlayIP {
			n, _ := strconv.ParseInt(m[1], 10, 64)
			return n
		}
	}
	s.t.Fatalf("no hub counter for %s-%s in:\n%s", x.overlayIP, y.overlayIP, out)
	return 0
}

// forwardAPIServer makes the API server answer at the hub's overlay
// address, where the agents reach it through their tunnels.
func (s *stage) forwardAPIServer() {
	u, err := url.Parse(s.cp.URL())
	if err != nil {
		s.t.Fatal(err)
	}
	ln, err := netns.Forward(s.tp.Hub, hubOverlay+":6443", u.Host)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { _ = ln.Close() })
}

// overlayKubeconfig is a kubeconfig reaching the API server at the hub's
// overlay address, as user in groups.
func (s *stage) overlayKubeconfig(user string, groups ...string) string {
	cfg, err := s.cp.UserConfig(user, groups...)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg.Host = "https://" + net.JoinHostPort(hubOverlay, "6443")
	return harness.WriteKubeconfig(s.t, cfg)
}

// startHubAgent runs kubectl-stage-agent --hub in the hub's namespace, with
// the operator's credentials.
func (s *stage) startHubAgent() {
	logPath := filepath.Join(s.dir, "agent-hub.log")
	agent, err := harness.StartDaemon("agent-hub", "ip", []string{"netns", "exec", s.tp.Hub, s.agentBin,
		"--kubeconfig", s.overlayKubeconfig("stgmesh-hub-operator", "system:masters"), "--hub", "--interface", s.hubIface}, logPath)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() {
		agent.Stop()
		s.logOnFailure("agent hub", logPath)
	})
}

// startNodeAgent starts n's agent as its bundle does after kubeadm join,
// with the credentials join leaves on the node: the kubelet's (user
// system:node:NAME in group system:nodes), which only init's role lets
// read the records.
func (s *stage) startNodeAgent(n *node) {
	t := s.t
	kubeletConf := filepath.Join(n.prefix, "etc", "kubernetes", "kubelet.conf")
	data, err := os.ReadFile(s.overlayKubeconfig("system:node:"+n.name, api.NodesGroup))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(kubeletConf), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kubeletConf, data, 0o600); err != nil {
		t.Fatal(err)
	}
	n.agentLog = filepath.Join(n.prefix, "etc", "kubectl-stage", "agent.log")
	out := s.bundle(n, "agent")
	if !strings.Contains(out, "node agent started") {
		t.Fatalf("bundle agent at %s:\n%s", n.name, out)
	}
	t.Cleanup(func() { s.logOnFailure("agent "+n.name, n.agentLog) })
}

func (s *stage) logOnFailure(who, path string) {
	if s.t.Failed() {
		log, _ := os.ReadFile(path)
		s.t.Logf("%s log:\n%s", who, log)
	}
}

// live is an interface's peers now.
func (s *stage) live(ns, iface string) []mesh.LivePeer {
	s.t.Helper()
	out, err := s.tp.Run(ns, "wg", "show", iface, "dump")
	if err != nil {
		s.t.Fatalf("wg show %s dump in %s: %v\n%s", iface, ns, err, out)
	}
	peers, err := mesh.ParseDump(out)
	if err != nil {
		s.t.Fatal(err)
	}
	return peers
}

// peer is n's live peer with key.
func (s *stage) peer(n *node, key string) mesh.LivePeer {
	s.t.Helper()
	for _, p := range s.live(n.ns, n.iface) {
		if p.PublicKey == key {
			return p
		}
	}
	s.t.Fatalf("%s has no peer %s", n.name, key)
	return mesh.LivePeer{}
}

// waitPeers waits until each node's interface has exactly the hub and the
// given direct peers, each for its /32 at its declared endpoint, and none
// of the keys in gone; it returns how long that took.
func (s *stage) waitPeers(what string, want map[*node][]*node, gone []string) time.Duration {
	s.t.Helper()
	var last string
	took := harness.WaitFor(s.t, what, propagation, 20*time.Millisecond, func() bool {
		for n, direct := range want {
			got := s.live(n.ns, n.iface)
			wantKeys := []string{s.hubKey()}
			for _, d := range direct {
				wantKeys = append(wantKeys, d.key)
			}
			var gotKeys []string
			for _, p := range got {
				gotKeys = append(gotKeys, p.PublicKey)
				for _, d := range direct {
					if p.PublicKey == d.key && (len(p.AllowedIPs) != 1 || p.AllowedIPs[0].String() != d.overlayIP+"/32" || p.Endpoint != d.endpoint) {
						last = fmt.Sprintf("%s's peer %s: %+v", n.name, d.name, p)
						return false
					}
				}
				if slices.Contains(gone, p.PublicKey) {
					last = fmt.Sprintf("%s still has key %s", n.name, p.PublicKey)
					return false
				}
			}
			slices.Sort(wantKeys)
			slices.Sort(gotKeys)
			if !slices.Equal(wantKeys, gotKeys) {
				last = fmt.Sprintf("%s has peers %v, want %v", n.name, gotKeys, wantKeys)
				return false
			}
		}
		return true
	})
	if last != "" {
		s.t.Logf("%s: last seen before it held: %s", what, last)
	}
	return took
}

// waitHubPeers waits until the hub's interface has exactly these nodes.
func (s *stage) waitHubPeers(nodes ...*node) {
	s.t.Helper()
	var want []string
	for _, n := range nodes {
		want = append(want, n.key+" "+n.overlayIP+"/32")
	}
	slices.Sort(want)
	harness.WaitFor(s.t, "the hub's peers", propagation, 20*time.Millisecond, func() bool {
		var got []string
		for _, p := range s.live(s.tp.Hub, s.hubIface) {
			got = append(got, p.PublicKey+" "+formatPrefixes(p))
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

func formatPrefixes(p mesh.LivePeer) string {
	var s []string
	for _, x := range p.AllowedIPs {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (s *stage) hubKey() string {
	if s.hubPublicKey == "" {
		out, err := s.tp.Run(s.tp.Hub, "wg", "show", s.hubIface, "public-key")
		if err != nil {
			s.t.Fatalf("wg show public-key: %v %s", err, out)
		}
		s.hubPublicKey = strings.TrimSpace(out)
	}
	return s.hubPublicKey
}

func (s *stage) startIperfServer(n *node) {
	d, err := harness.StartDaemon("iperf3-"+n.name, "ip", []string{"netns", "exec", n.ns, "iperf3", "-s", "-B", n.overlayIP, "-p", iperfPort},
		filepath.Join(s.dir, "iperf3-"+n.name+".log"))
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(d.Stop)
	harness.WaitFor(s.t, "iperf3 at "+n.name, 20*time.Second, 50*time.Millisecond, func() bool {
		out, _ := s.tp.Run(n.ns, "ss", "-Hltn", "sport", "=", ":"+iperfPort)
		return strings.Contains(out, n.overlayIP)
	})
}

type throughput struct {
	bytes int64
	mbps  float64
}

// iperf sends from x to y's iperf3 server for three seconds.
func (s *stage) iperf(x, y *node) throughput {
	s.t.Helper()
	out, err := s.tp.Run(x.ns, "iperf3", "-c", y.overlayIP, "-p", iperfPort, "-t", "3", "-J")
	if err != nil {
		s.t.Fatalf("iperf3 %s -> %s: %v\n%s", x.name, y.name, err, out)
	}
	var result struct {
		End struct {
			SumReceived struct {
				Bytes         int64   `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &result); err != nil {
		s.t.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	if result.End.SumReceived.Bytes == 0 {
		s.t.Fatalf("iperf3 %s -> %s moved nothing:\n%s", x.name, y.name, out)
	}
	return throughput{bytes: result.End.SumReceived.Bytes, mbps: result.End.SumReceived.BitsPerSecond / 1e6}
}

// checkPathsJSON checks `net paths -o json`'s path of every pair.
func (s *stage) checkPathsJSON(want map[string]string) {
	var list struct {
		Kind  string `json:"kind"`
		Shape string `json:"shape"`
		Items []struct {
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				Path string `json:"path"`
			} `json:"spec"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(s.stage("net", "paths", "-o", "json")), &list); err != nil {
		s.t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range list.Items {
		got[p.Metadata.Name] = p.Spec.Path
	}
	if list.Kind != "NetworkPathList" || list.Shape != "mesh" || fmt.Sprint(got) != fmt.Sprint(want) {
		s.t.Errorf("net paths -o json: kind %s shape %s paths %v, want NetworkPathList mesh %v", list.Kind, list.Shape, got, want)
	}
}

// forge writes a node record the way only someone with write access to
// kubectl-stage-system could: not through join. It returns its key.
func (s *stage) forge(name, overlayIP, key, endpoint string) string {
	s.t.Helper()
	rec := fmt.Sprintf(`{"name":%q,"site":"site-x","overlayIP":%q,"vpn":"wireguard","wireGuardPublicKey":%q,"endpoint":%q,"credentialExpires":"2030-01-01T00:00:00Z","tokenID":"abcdef","tokenExpires":"2030-01-01T00:00:00Z","enrolledAt":%q}`,
		name, overlayIP, key, endpoint, time.Now().UTC().Format(time.RFC3339))
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: api.NodePrefix + name, Namespace: api.SystemNamespace,
			Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue, api.LabelRecord: "node", api.LabelSite: "site-x"}},
		Data: map[string]string{"record": rec},
	}
	if _, err := s.client.CoreV1().ConfigMaps(api.SystemNamespace).Create(context.Background(), cm, metav1.CreateOptions{}); err != nil {
		s.t.Fatal(err)
	}
	return key
}

func newKey(t testing.TB) string {
	k, err := vpn.NewWireGuardKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.Public
}
