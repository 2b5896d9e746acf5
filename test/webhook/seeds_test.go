package webhook_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/examples/gossip/node"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	stagewebhook "github.com/kubectl-stage/kubectl-stage/webhook"
)

// gossipPort is the peers' port; their addresses are loopback ones of
// this test's own (127.77.*), so real processes can serve at each node's IP.
const gossipPort = 17946

// TestSeedEndpointFollowsThePeers runs the seed endpoint of the real
// webhook against a real API server with kwok nodes at three sites (an old
// and a new node each) and the gossip example as real processes at the
// nodes' addresses: the endpoint lists only ready peers, other sites first;
// after `kubectl stage rollout` has replaced every peer (on the new nodes)
// it lists exactly the new ones; and a new peer whose injected seeds were
// all old peers, now gone, joins the network through STAGE_SEED_URL.
func TestSeedEndpointFollowsThePeers(t *testing.T) {
	ctx := context.Background()
	cp := harness.StartForTest(t, harness.All())
	nodeIP := map[string]string{}
	for i, site := range sites {
		for j, generation := range []string{"old", "new"} {
			name := site + "-" + generation
			nodeIP[name] = fmt.Sprintf("127.77.%d.%d", j, 10+i)
			if _, err := cp.AddNode(ctx, harness.Node{Name: name, Site: site, InternalIP: nodeIP[name]}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cordon := func(generation string, on bool) {
		for _, site := range sites {
			patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
			if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, site+"-"+generation, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cordon("new", true)

	seedURL := fmt.Sprintf("http://127.0.0.1:%d", harness.FreePort(t))
	port := harness.FreePort(t)
	cert, key, err := cp.InstallChartForURL(ctx, fmt.Sprintf("https://127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	serveWebhook(t, cp, port, cert, key, stagewebhook.Options{SeedsAddr: strings.TrimPrefix(seedURL, "http://"), SeedURL: seedURL})
	createNamespace(t, cp, "p2p", map[string]string{api.LabelInject: api.LabelInjectValue})

	// Three peers, one per site, and a peer that never gets a node.
	peer := func(role string) corev1.PodTemplateSpec {
		return corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{
				Labels: map[string]string{"app.kubernetes.io/name": "gossip", "role": role},
				Annotations: map[string]string{api.AnnotationPlacement: "one-per-site", api.AnnotationPort: fmt.Sprint(gossipPort),
					api.AnnotationSeeds: "3"},
			},
			Spec: corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "gossip", Image: "gossip:v1"}}},
		}
	}
	tmpl := peer("peer")
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "gossip", Namespace: "p2p"},
		Spec:       appsv1.DeploymentSpec{Replicas: ptr.To(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}
	if _, err := cp.Client.AppsV1().Deployments("p2p").Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	straggler := peer("straggler")
	straggler.Spec.NodeSelector = map[string]string{"example.com/no-such-node": "true"}
	straggler.Name = "gossip-straggler"
	if _, err := cp.Client.CoreV1().Pods("p2p").Create(ctx, &corev1.Pod{ObjectMeta: straggler.ObjectMeta, Spec: straggler.Spec}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	v1 := waitRunning(t, cp, "p2p", "role=peer", 3)

	// Only ready peers, other sites first, each at its node's address.
	want := map[string]corev1.Pod{}
	for _, p := range v1 {
		want[p.Name] = p
	}
	list := waitSeeds(t, seedURL+"/seeds/p2p/gossip?site=tokyo", func(l stagewebhook.SeedList) bool { return l.ReadyPeers == 3 })
	if list.Port != gossipPort || len(list.Seeds) != 3 || list.Seeds[2].Site != "tokyo" || list.Seeds[0].Site == "tokyo" || list.Seeds[1].Site == "tokyo" {
		t.Fatalf("seeds for tokyo: %+v; want port %d, the two other sites' peers, then tokyo's", list, gossipPort)
	}
	for _, s := range list.Seeds {
		p, ok := want[s.Pod]
		if !ok || s.Address != fmt.Sprintf("%s:%d", p.Status.HostIP, gossipPort) || s.Node != p.Spec.NodeName || p.Spec.NodeName != s.Site+"-old" {
			t.Errorf("seed %+v is not a ready peer at its node's address (peers: %v)", s, slices.Collect(maps.Keys(want)))
		}
	}
	text := harness.Get(t, seedURL+"/seeds/p2p/gossip?site=tokyo&format=text")
	if wantText := strings.Join(stagewebhook.AddressesOf(list), "\n") + "\n"; text != wantText {
		t.Errorf("text list %q, want %q", text, wantText)
	}

	// The peers run, each with the environment the webhook injected; its
	// STAGE_SEED_URL asks for other sites than its own.
	gossip := harness.Build(t, "./examples/gossip")
	logs := t.TempDir()
	running := map[string]*harness.Daemon{}
	start := func(p corev1.Pod) {
		env := harness.EnvMap(harness.ResolveEnv(&p, &p.Spec.Containers[0]))
		wantURL := fmt.Sprintf("%s/seeds/p2p/gossip?site=%s&port=%d&key=%s", seedURL, p.Labels[api.LabelZone], gossipPort, p.Name)
		if env[api.EnvSeedURL] != wantURL || p.Labels[api.LabelZone] == "" {
			t.Fatalf("%s: %s=%q, want %q", p.Name, api.EnvSeedURL, env[api.EnvSeedURL], wantURL)
		}
		args := []string{"-i"}
		for name, value := range env {
			args = append(args, name+"="+value)
		}
		d, err := harness.StartDaemon(p.Name, "env", append(args, gossip, "--interval=200ms"), filepath.Join(logs, p.Name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		running[p.Name] = d
		t.Cleanup(d.Stop)
	}
	for _, p := range v1 {
		start(p)
	}
	waitMembers(t, v1, 3, logs)

	// The rollout replaces every peer, on the new nodes.
	cordon("old", true)
	cordon("new", false)
	if out, _, err := harness.RunStage(ctx, cp.Kubeconfig, nil, "rollout", "-n", "p2p", "deploy/gossip", "--image", "gossip=gossip:v2", "--timeout", "2m"); err != nil {
		t.Fatalf("kubectl stage rollout: %v\n%s", err, out)
	}
	var v2 []corev1.Pod
	for _, p := range waitRunning(t, cp, "p2p", "role=peer", 3) {
		if _, old := want[p.Name]; old || p.Spec.NodeName != p.Labels[api.LabelZone]+"-new" {
			t.Fatalf("after the rollout %s runs on %s", p.Name, p.Spec.NodeName)
		}
		v2 = append(v2, p)
	}
	for name := range want {
		running[name].Stop()
	}
	newNames := []string{v2[0].Name, v2[1].Name, v2[2].Name}
	slices.Sort(newNames)
	list = waitSeeds(t, seedURL+"/seeds/p2p/gossip?site=osaka", func(l stagewebhook.SeedList) bool {
		var names []string
		for _, s := range l.Seeds {
			names = append(names, s.Pod)
		}
		slices.Sort(names)
		return slices.Equal(names, newNames) && l.ReadyPeers == 3
	})
	for _, s := range list.Seeds {
		if s.Address != fmt.Sprintf("%s:%d", nodeIP[s.Site+"-new"], gossipPort) {
			t.Errorf("seed %+v is not at its new node", s)
		}
	}

	// A new peer admitted while the old ones were the ready peers has only
	// their addresses as seeds, where nothing answers any more.
	oldAddrs := map[string]bool{}
	for _, p := range v1 {
		oldAddrs[fmt.Sprintf("%s:%d", p.Status.HostIP, gossipPort)] = true
	}
	stale := slices.IndexFunc(v2, func(p corev1.Pod) bool {
		seeds := strings.Split(envValue(p, api.EnvPeerSeeds), ",")
		return slices.ContainsFunc(seeds, func(s string) bool { return s != "" }) && !slices.ContainsFunc(seeds, func(s string) bool { return !oldAddrs[s] })
	})
	if stale < 0 {
		t.Fatalf("no new peer was seeded with old peers only: the test proves nothing (seeds: %v)", seedsOf(v2))
	}
	// The others first: once they know each other they gossip only with
	// each other, so the stale peer can only come in through the endpoint.
	others := slices.Delete(slices.Clone(v2), stale, stale+1)
	for _, p := range others {
		start(p)
	}
	waitMembers(t, others, 2, logs)
	start(v2[stale])
	waitMembers(t, v2, 3, logs)
	log, err := os.ReadFile(filepath.Join(logs, v2[stale].Name+".log"))
	if err != nil || !strings.Contains(string(log), "asked the seed endpoint: no live peer known") {
		t.Errorf("%s did not ask the seed endpoint (seeds %s):\n%s", v2[stale].Name, envValue(v2[stale], api.EnvPeerSeeds), log)
	}
}

func seedsOf(pods []corev1.Pod) map[string]string {
	out := map[string]string{}
	for _, p := range pods {
		out[p.Name] = envValue(p, api.EnvPeerSeeds)
	}
	return out
}

// waitSeeds asks the endpoint until done accepts its answer.
func waitSeeds(t *testing.T, url string, done func(stagewebhook.SeedList) bool) stagewebhook.SeedList {
	t.Helper()
	var list stagewebhook.SeedList
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		list = stagewebhook.SeedList{}
		return json.Unmarshal([]byte(harness.Get(t, url)), &list) == nil && done(list), nil
	})
	if err != nil {
		t.Fatalf("GET %s never gave the expected list; last: %+v", url, list)
	}
	return list
}

// waitMembers waits until each peer's own view has n live members.
func waitMembers(t *testing.T, pods []corev1.Pod, n int, logs string) {
	t.Helper()
	views := map[string]int{}
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		for _, p := range pods {
			views[p.Name] = liveMembers(fmt.Sprintf("%s:%d", p.Status.HostIP, gossipPort))
		}
		for _, p := range pods {
			if views[p.Name] != n {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("live members per peer %v, want %d each (logs in %s)", views, n, logs)
	}
}

func liveMembers(addr string) int {
	client := http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + addr + "/peers")
	if err != nil {
		return -1
	}
	defer func() { _ = resp.Body.Close() }()
	var v node.View
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return -1
	}
	alive := 0
	for _, m := range v.Members {
		if m.Alive {
			alive++
		}
	}
	return alive
}
