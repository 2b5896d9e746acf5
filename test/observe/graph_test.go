// Package observe_test proves the commands that observe the system under
// test against a real API server, kwok nodes and the gossip example as
// real processes.
package observe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const gossipPort = 17946

var sites = []string{"frankfurt", "osaka", "tokyo"}

// peerAddresses puts an address per site on a veth interface of this
// host (no dummy module here; deleting one end removes both): the API server refuses to proxy to loopback addresses, and the
// gossip peers must serve where their pods' IPs say.
func peerAddresses(t *testing.T) []string {
	t.Helper()
	link := fmt.Sprintf("stgobs%d", os.Getpid()%100000)
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
	for i := range sites {
		ip := fmt.Sprintf("10.77.%d.%d", os.Getpid()%250, i+2)
		run("addr", "add", ip+"/32", "dev", link)
		ips = append(ips, ip)
	}
	return ips
}

// peers is a control plane with a kwok node per site and a gossip pod on
// each, served by a real gossip process at its node's address.
type peers struct {
	cp      *harness.ControlPlane
	daemons map[string]*harness.Daemon
	logs    string
}

func startPeers(t *testing.T) *peers {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the peers serve on addresses of an interface the test creates")
	}
	ctx := context.Background()
	ips := peerAddresses(t)
	p := &peers{cp: harness.StartForTest(t, harness.All()), daemons: map[string]*harness.Daemon{}, logs: t.TempDir()}
	if _, err := p.cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p2p"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	gossip := harness.Build(t, "./examples/gossip")
	for i, site := range sites {
		node := site + "-1"
		if _, err := p.cp.AddNode(ctx, harness.Node{Name: node, Site: site, InternalIP: ips[i]}); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gossip-%d", i), Labels: map[string]string{api.LabelApp: "gossip"},
				Annotations: map[string]string{api.AnnotationPort: fmt.Sprint(gossipPort), api.AnnotationPeersEndpoint: fmt.Sprintf(":%d/peers", gossipPort)}},
			Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, Containers: []corev1.Container{{Name: "gossip", Image: "gossip:v1"}}},
		}
		if _, err := p.cp.Client.CoreV1().Pods("p2p").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The first peer seeds the others.
		env := []string{"STAGE_POD_NAME=" + pod.Name, "STAGE_SITE=" + site, fmt.Sprintf("STAGE_ADVERTISE_ADDR=%s:%d", ips[i], gossipPort)}
		if i > 0 {
			env = append(env, fmt.Sprintf("STAGE_PEER_SEEDS=%s:%d", ips[0], gossipPort))
		}
		d, err := harness.StartDaemon(pod.Name, "env", append(append([]string{"-i"}, env...), gossip, "--interval=200ms"), filepath.Join(p.logs, pod.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(d.Stop)
		p.daemons[pod.Name] = d
	}
	return p
}

// stage runs kubectl stage ARGS against the peers' cluster.
func (p *peers) stage(args ...string) (string, error) {
	out, _, err := harness.RunStage(context.Background(), p.cp.Kubeconfig, nil, args...)
	return out, err
}

// TestGraph reads three real gossip peers' views through the API server's
// pod proxy and prints who knows whom; a peer that stops is shown as not
// answering, and the others drop it.
func TestGraph(t *testing.T) {
	ctx := context.Background()
	p := startPeers(t)
	cp, daemons, logs := p.cp, p.daemons, p.logs
	graph := func(args ...string) (string, error) {
		return p.stage(append([]string{"graph", "gossip", "-n", "p2p"}, args...)...)
	}
	until := func(summary string) string {
		t.Helper()
		var out string
		err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			out, _ = graph()
			return strings.Contains(out, summary), nil
		})
		if err != nil {
			t.Fatalf("the graph never showed %q; last:\n%s\n(logs in %s)", summary, out, logs)
		}
		return out
	}
	out := until("3 peers, 3 answered; 1 connected component; 6 links, 6 across sites (100%)")
	want := `PEER       SITE        NODE          KNOWN   CROSS-SITE   UNKNOWN   VIEW
gossip-0   frankfurt   frankfurt-1   2       2            0         ok
gossip-1   osaka       osaka-1       2       2            0         ok
gossip-2   tokyo       tokyo-1       2       2            0         ok

3 peers, 3 answered; 1 connected component; 6 links, 6 across sites (100%)
isolated: <none>
not answering: <none>
sites with no link to another site: <none>
`
	if out != want {
		t.Errorf("kubectl stage graph:\n%s\nwant:\n%s", out, want)
	}
	raw, err := graph("-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var g v1alpha1.PeerGraph
	if err := json.Unmarshal([]byte(raw), &g); err != nil || g.APIVersion != "kubectl-stage.io/v1alpha1" || g.Kind != "PeerGraph" || g.Name != "gossip" || len(g.Links) != 6 {
		t.Errorf("-o json: %v\n%s", err, raw)
	}
	if dot, err := graph("-o", "dot"); err != nil || !strings.Contains(dot, `label="osaka";`+"\n"+`    "gossip-1";`) || strings.Count(dot, "[style=bold]") != 6 {
		t.Errorf("-o dot: %v\n%s", err, dot)
	}

	// The tokyo peer stops: it answers no more, and the others forget it.
	daemons["gossip-2"].Stop()
	out = until("3 peers, 2 answered; 2 connected components; 2 links, 2 across sites (100%)")
	lines := strings.Split(out, "\n")
	if !strings.HasPrefix(lines[3], "gossip-2   tokyo       tokyo-1       -       -            -         no answer: GET 17946/peers through the API server: ") {
		t.Errorf("the stopped peer's row: %q", lines[3])
	}
	wantTail := `3 peers, 2 answered; 2 connected components; 2 links, 2 across sites (100%)
isolated: gossip-2
not answering: gossip-2
sites with no link to another site: tokyo
`
	if tail := strings.Join(lines[5:], "\n"); tail != wantTail {
		t.Errorf("summary:\n%s\nwant:\n%s", tail, wantTail)
	}

	if _, err := graph("--timeout", "0s"); err == nil || err.Error() != "--timeout=0s: must be positive, such as 5s" {
		t.Errorf("--timeout 0: %v", err)
	}
	if _, _, err := harness.RunStage(ctx, cp.Kubeconfig, nil, "graph", "nosuch", "-n", "p2p"); err == nil ||
		err.Error() != `no running pods of app "nosuch" in namespace "p2p" (label kubectl-stage.io/app=nosuch): check the app's name and namespace (-n)` {
		t.Errorf("unknown app: %v", err)
	}
}
