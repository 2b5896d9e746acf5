// Package observe_test proves the commands that observe the system under
// test against a real API server, kwok nodes and the gossip example as
// real processes.
package observe_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const gossipPort = 17946

var sites = []string{"frankfurt", "osaka", "tokyo"}

// peers is a control plane with a kwok node per site and a gossip pod on
// each, served by a real gossip process at its node's address.
type peers struct {
	cp      *harness.ControlPlane
	ips     []string
	gossip  string
	daemons map[string]*harness.Daemon
	logs    string
}

func startPeers(t *testing.T) *peers {
	t.Helper()
	p := newPeers(t)
	p.gossip = harness.Build(t, "./examples/gossip")
	for i := range sites {
		// The first peer seeds the others.
		var seeds []string
		if i > 0 {
			seeds = []string{fmt.Sprintf("%s:%d", p.ips[0], gossipPort)}
		}
		p.startPeer(t, fmt.Sprintf("gossip-%d", i), i, seeds)
	}
	return p
}

// newPeers is a control plane with namespace p2p and a kwok node per site
// at an address of this host, with no peers yet.
func newPeers(t testing.TB) *peers {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the peers serve on addresses of an interface the test creates")
	}
	ctx := context.Background()
	p := &peers{ips: harness.HostAddresses(t, len(sites)), cp: harness.StartForTest(t, harness.All()), daemons: map[string]*harness.Daemon{}, logs: t.TempDir()}
	if _, err := p.cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "p2p"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i, site := range sites {
		if _, err := p.cp.AddNode(ctx, harness.Node{Name: site + "-1", Site: site, InternalIP: p.ips[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// startPeer runs a gossip pod named name on the node of site number
// site, and its process at that node's address.
func (p *peers) startPeer(t *testing.T, name string, site int, seeds []string) {
	t.Helper()
	p.addPod(t, name, site, gossipPort)
	p.daemons[name] = harness.StartGossip(t, p.gossip, harness.Gossip{Name: name, Site: sites[site], Addr: fmt.Sprintf("%s:%d", p.ips[site], gossipPort), Seeds: seeds},
		filepath.Join(p.logs, name+".log"))
}

// addPod creates a pod of the app on the node of site number site that
// serves its view at port.
func (p *peers) addPod(t testing.TB, name string, site, port int) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelApp: "gossip"},
			Annotations: map[string]string{api.AnnotationPort: fmt.Sprint(port), api.AnnotationPeersEndpoint: fmt.Sprintf(":%d/peers", port)}},
		Spec: corev1.PodSpec{NodeName: sites[site] + "-1", HostNetwork: true, Containers: []corev1.Container{{Name: "gossip", Image: "gossip:v1"}}},
	}
	if _, err := p.cp.Client.CoreV1().Pods("p2p").Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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

	// A peer started with no seeds where the stopped one was: it answers,
	// knows nobody, and nobody knows it.
	if err := cp.Client.CoreV1().Pods("p2p").Delete(ctx, "gossip-2", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	p.startPeer(t, "gossip-3", 2, nil)
	out = until("3 peers, 3 answered; 2 connected components; 2 links, 2 across sites (100%)")
	wantTail = `3 peers, 3 answered; 2 connected components; 2 links, 2 across sites (100%)
isolated: gossip-3
not answering: <none>
sites with no link to another site: tokyo
`
	if tail := strings.Join(strings.Split(out, "\n")[5:], "\n"); tail != wantTail || !strings.Contains(out, "gossip-3   tokyo       tokyo-1       0       0            0         ok") {
		t.Errorf("with an isolated peer:\n%s\nwant the summary:\n%s", out, wantTail)
	}

	// A peer whose endpoint answers garbage, and one whose endpoint hangs:
	// each is reported on its own row, within the timeout.
	garbage := serve(t, p.ips[0], gossipPort+1, func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("hello")) })
	hang := serve(t, p.ips[1], gossipPort+2, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	p.addPod(t, "junk-0", 0, garbage)
	p.addPod(t, "slow-0", 1, hang)
	out = until("5 peers, 3 answered")
	if !strings.Contains(out, "junk-0     frankfurt   frankfurt-1   -       -            -         no answer: GET 17947/peers: the answer is not JSON: want an array of peers, or an object with a \"peers\" or \"members\" array\n") ||
		!strings.Contains(out, "slow-0     osaka       osaka-1       -       -            -         no answer: GET 17948/peers through the API server: ") {
		t.Errorf("garbage and hanging endpoints:\n%s", out)
	}

	// Without the right to proxy to pods or list nodes, the missing
	// permissions are named before anything is read.
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: "p2p"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dev-pod-reader", Namespace: "p2p"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dev"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
	}
	if _, err := cp.Client.RbacV1().Roles("p2p").Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.RbacV1().RoleBindings("p2p").Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dev, err := cp.UserConfig("dev")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = harness.RunStage(ctx, harness.WriteKubeconfig(t, dev), nil, "graph", "gossip", "-n", "p2p")
	wantErr := `missing permission to read the peers' views of app "gossip" in namespace p2p. You may not:
  - list nodes (cluster-wide)   (check: kubectl auth can-i list nodes)
  - get pods/proxy in namespace p2p   (check: kubectl auth can-i get pods --subresource=proxy -n p2p)
ask a cluster administrator to grant these verbs (for example through a ClusterRole bound to you), or use a kubeconfig context that has them`
	if err == nil || err.Error() != wantErr {
		t.Errorf("without permissions:\n%v\nwant:\n%s", err, wantErr)
	}

	if _, err := graph("--timeout", "0s"); err == nil || err.Error() != "--timeout=0s: must be positive, such as 5s" {
		t.Errorf("--timeout 0: %v", err)
	}
	if _, _, err := harness.RunStage(ctx, cp.Kubeconfig, nil, "graph", "nosuch", "-n", "p2p"); err == nil ||
		err.Error() != `no running pods of app "nosuch" in namespace "p2p" (label kubectl-stage.io/app=nosuch): check the app's name and namespace (-n)` {
		t.Errorf("unknown app: %v", err)
	}
}

// serve answers HTTP on ip:port with handler until the test ends, and
// returns port.
func serve(t testing.TB, ip string, port int, handler http.HandlerFunc) int {
	t.Helper()
	l, err := net.Listen("tcp", fmt.Sprintf("%s:%d", ip, port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return port
}
