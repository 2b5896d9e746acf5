package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// fakeHost records the commands run and fails those matching fail with
// the given error output.
type fakeHost struct {
	mu   sync.Mutex
	ran  []string
	fail map[string]string // command prefix -> error output
}

func (f *fakeHost) run(_ context.Context, stdin, name string, args ...string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	line := strings.Join(append([]string{name}, args...), " ")
	f.ran = append(f.ran, line)
	for prefix, stderr := range f.fail {
		if strings.HasPrefix(line, prefix) {
			return nil, errors.New(line + ": exit status 2: " + stderr)
		}
	}
	return nil, nil
}

var resetLines = []string{"nft delete table inet kubectl-stage-net", "tc qdisc del dev wg0 root handle 5354:"}

func TestRuleApplier(t *testing.T) {
	host := &fakeHost{fail: map[string]string{
		"nft delete":    "Error: No such file or directory",
		"tc qdisc del":  "Error: Invalid handle.",
		"tc filter add": "RTNETLINK answers: Invalid argument",
	}}
	a := &RuleApplier{Device: "wg0", Run: host.run}
	cmds := []netcond.Command{{Args: []string{"nft", "-f", "-"}, Stdin: "table inet kubectl-stage-net {}\n"}, {Args: []string{"tc", "qdisc", "add", "dev", "wg0", "root", "handle", "5354:", "htb"}}}

	changed, err := a.Apply(context.Background(), cmds)
	if err != nil || !changed {
		t.Fatalf("first apply: changed %v, %v", changed, err)
	}
	want := append(append([]string{}, resetLines...), "nft -f -", "tc qdisc add dev wg0 root handle 5354: htb")
	if !reflect.DeepEqual(host.ran, want) {
		t.Errorf("ran %q, want the leftovers removed (absent is fine) then %q", host.ran, want)
	}

	host.ran = nil
	if changed, err := a.Apply(context.Background(), cmds); err != nil || changed || len(host.ran) > 0 {
		t.Errorf("the same rules again: changed %v, %v, ran %q; want nothing run", changed, err, host.ran)
	}

	// A command failing halfway: the rules already added are removed.
	host.ran = nil
	failing := append(cmds, netcond.Command{Args: []string{"tc", "filter", "add", "dev", "wg0"}})
	if _, err := a.Apply(context.Background(), failing); err == nil || !strings.Contains(err.Error(), "Invalid argument") {
		t.Fatalf("a failing command: %v", err)
	}
	if got := host.ran[len(host.ran)-2:]; !reflect.DeepEqual(got, resetLines) {
		t.Errorf("after a failure ran %q last, want the rules removed: %q", got, resetLines)
	}

	// A removal failing for another reason than absence is an error.
	host.fail["nft delete"] = "Error: Operation not permitted"
	if err := a.Reset(context.Background()); err == nil || !strings.Contains(err.Error(), "Operation not permitted") {
		t.Errorf("reset: %v, want the failure reported", err)
	}
}

func TestProbeNetem(t *testing.T) {
	probe := []string{
		"ip link del kstg-netem0",
		"ip link add kstg-netem0 type veth peer name kstg-netem1",
		"tc qdisc add dev kstg-netem0 root netem delay 0ms",
		"ip link del kstg-netem0",
	}
	for _, tt := range []struct {
		name       string
		netemError string
		want       bool
		wantReason string
	}{
		{"no sch_netem", "Error: Specified qdisc kind is unknown.", false, netcond.NetemMissing},
		{"netem", "", true, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			host := &fakeHost{fail: map[string]string{}}
			if tt.netemError != "" {
				host.fail["tc qdisc add dev kstg-netem0"] = tt.netemError
			}
			a := &RuleApplier{Device: "wg0", Run: host.run}
			ok, reason, err := a.ProbeNetem(context.Background())
			if err != nil || ok != tt.want || reason != tt.wantReason {
				t.Errorf("ProbeNetem = %v, %q, %v; want %v, %q", ok, reason, err, tt.want, tt.wantReason)
			}
			// The overlay device is never touched by the probe.
			if !reflect.DeepEqual(host.ran, probe) {
				t.Errorf("ran %q, want %q", host.ran, probe)
			}
		})
	}
}

func (f *fakeHost) commands() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string{}, f.ran...)
}

// TestNetConditionsFollowsTheCluster runs the conditions' loop against a
// fake API server and host: it publishes its status on its Node, applies a
// stored partition and says so, and removes its rules when stopped.
func TestNetConditionsFollowsTheCluster(t *testing.T) {
	now := time.Now().UTC()
	a := site.NodeRecord{Name: "a-1", Site: "a", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.WireGuard, WireGuardPublicKey: key(t), EnrolledAt: now}
	b := site.NodeRecord{Name: "b-1", Site: "b", OverlayIP: netip.MustParseAddr("10.23.0.3"), VPN: vpn.WireGuard, WireGuardPublicKey: key(t), EnrolledAt: now}
	client := fake.NewSimpleClientset(stagingConfigMap(t, key(t)), record(t, a), record(t, b), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "a-1"}})
	host := &fakeHost{fail: map[string]string{"nft delete": "No such file or directory", "tc qdisc del": "Invalid handle", "tc qdisc add dev kstg-netem0": "Error: Specified qdisc kind is unknown."}}
	var log syncBuffer
	n := &NetConditions{Client: client, Records: startRecords(t, client), Node: "a-1", Rules: &RuleApplier{Device: "wg0", Run: host.run}, Resync: time.Hour, PublishEvery: time.Second, Log: &log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()

	status := func(what string, ok func(*netcond.Status) bool) *netcond.Status {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			node, err := client.CoreV1().Nodes().Get(context.Background(), "a-1", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st, err := site.NetStatusOf(node)
			if err != nil {
				t.Fatal(err)
			}
			if st != nil && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: status %+v\nlog:\n%s", what, st, log.String())
			}
		}
	}
	status("no conditions", func(st *netcond.Status) bool {
		return st.Site == "a" && st.ConditionsVersion == "" && len(st.Pairs) == 0
	})

	doc := netcond.New()
	doc.Partition([]string{"a"}, nil, []string{"a", "b"})
	doc.Default.Latency = "50ms"
	data, err := yaml.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	stored := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: netcond.ConfigMapName, Namespace: api.SystemNamespace, ResourceVersion: "42",
		Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue}}, Data: map[string]string{netcond.DocumentKey: string(data)}}
	if _, err := client.CoreV1().ConfigMaps(api.SystemNamespace).Create(context.Background(), stored, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	st := status("the partition", func(st *netcond.Status) bool { return st.ConditionsVersion == "42" })
	yes := true
	want := []netcond.PairStatus{{From: "a", To: "b", Target: netcond.Conditions{Latency: "50ms", Partition: &yes}, Applied: []string{"partition"}}}
	if st.Error != "" || !reflect.DeepEqual(st.Pairs, want) {
		t.Errorf("status %+v, want pairs %+v", st, want)
	}
	if !slices.Contains(host.commands(), "nft -f -") {
		t.Errorf("the partition's rules were not run: %q", host.commands())
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ran := host.commands(); !reflect.DeepEqual(ran[len(ran)-2:], resetLines) {
		t.Errorf("stopping ran %q last, want the rules removed: %q", ran[len(ran)-2:], resetLines)
	}
}

// TestProber runs two probers on loopback addresses: each measures the
// other, and nothing is measured to a node that does not answer.
func TestProber(t *testing.T) {
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(l.LocalAddr().(*net.UDPAddr).Port)
	l.Close()
	nodes := []netcond.Node{
		{Name: "x", Site: "a", OverlayIP: netip.MustParseAddr("127.0.0.1")},
		{Name: "y", Site: "b", OverlayIP: netip.MustParseAddr("127.0.0.2")},
		{Name: "silent", Site: "b", OverlayIP: netip.MustParseAddr("127.0.0.3")},
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	probers := map[string]*Prober{}
	for _, n := range nodes[:2] {
		p := &Prober{Port: port, Interval: 20 * time.Millisecond, PerRound: 10, Window: 10, Timeout: 200 * time.Millisecond}
		p.SetPeers(n.OverlayIP, nodes)
		probers[n.Name] = p
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f := probers["x"].Figures()
		if len(f) == 2 && f[0].Sent == 10 && f[1].Sent == 10 {
			y, silent := f[1], f[0]
			if y.Node != "y" || y.Lost != 0 || y.P50 <= 0 || y.P95 < y.P50 {
				t.Errorf("x's figures for y: %+v, want 10 answered probes", y)
			}
			if silent.Node != "silent" || silent.Lost != 10 || silent.P50 != 0 {
				t.Errorf("x's figures for a node that never answers: %+v, want 10 lost", silent)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("x never measured 10 probes to each peer: %+v", f)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
