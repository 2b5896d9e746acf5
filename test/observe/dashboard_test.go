package observe_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/dashboard"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// TestDashboard serves the dashboard against the peers' cluster: its state
// shows each site's peer and their graph, a rollout's progress per site,
// and follows the cluster (a deleted peer leaves the pushed state); a real
// headless browser renders the page from the plugin alone; the server
// stops cleanly.
func TestDashboard(t *testing.T) {
	ctx := context.Background()
	p := startPeers(t)
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("no chromium: run hack/install-deps.sh (it installs it)")
	}
	// A StatefulSet rolled out site by site, for the rollouts section.
	tmpl := corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "web:v1"}},
			TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: api.LabelSite, WhenUnsatisfiable: corev1.DoNotSchedule,
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}}}},
	}
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "p2p"},
		Spec:       appsv1.StatefulSetSpec{Replicas: ptr.To(int32(3)), Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels}, Template: tmpl},
	}
	if _, err := p.cp.Client.AppsV1().StatefulSets("p2p").Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		s, err := p.cp.Client.AppsV1().StatefulSets("p2p").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && s.Status.ReadyReplicas == 3, nil
	}); err != nil {
		t.Fatal("the StatefulSet never became ready")
	}
	if out, err := p.stage("rollout", "-n", "p2p", "sts/web", "--image", "web=web:v2", "--timeout", "1m"); err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}

	port := harness.FreePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	serveCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := harness.RunStage(serveCtx, p.cp.Kubeconfig, nil, "dashboard", "--port", fmt.Sprint(port))
		done <- err
	}()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("the dashboard did not stop cleanly: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("the dashboard did not stop within 10 s")
		}
	}()

	var state dashboard.State
	err = wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		resp, err := http.Get(base + "/api/state")
		if err != nil {
			return false, nil
		}
		defer func() { _ = resp.Body.Close() }()
		state = dashboard.State{}
		if json.NewDecoder(resp.Body).Decode(&state) != nil {
			return false, nil
		}
		g := state.Graphs["p2p/gossip"].Summary
		return len(state.Apps) == 1 && len(state.Apps[0].Sites) == 3 && g.Components == 1 && g.Links == 6 && len(state.Rollouts) == 1, nil
	})
	if err != nil {
		t.Fatalf("the dashboard's state never showed the peers, their graph and the rollout: %+v", state)
	}
	for i, s := range state.Apps[0].Sites {
		if s.Site != sites[i] || len(s.Peers) != 1 || s.Peers[0].Pod != fmt.Sprintf("gossip-%d", i) || !s.Peers[0].Ready {
			t.Errorf("site %d: %+v", i, s)
		}
	}
	r := state.Rollouts[0]
	if r.Name != "web" || r.Status.Phase != "Complete" || len(r.Status.Sites) != 3 {
		t.Errorf("rollout: %+v", r)
	}
	for _, s := range r.Status.Sites {
		if s.Updated != 1 || s.Desired != 1 || s.Result != "Updated" {
			t.Errorf("rollout at %s: %+v", s.Name, s)
		}
	}
	svg := harness.Get(t, base+"/graph/p2p/gossip.svg")
	if strings.Count(svg, `<g class="site">`) != 3 || strings.Count(svg, `<line class="link cross"`) != 6 {
		t.Errorf("graph SVG:\n%s", svg)
	}

	// A real browser renders the page from what the plugin serves alone,
	// with its background networking off: nothing leaves this machine.
	// The page keeps its event stream open, so the DOM is taken after a
	// fixed time (--timeout), not when the network is idle.
	browse, cancelBrowse := context.WithTimeout(ctx, time.Minute)
	defer cancelBrowse()
	dom, err := exec.CommandContext(browse, browser, "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir="+t.TempDir(),
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
		"--timeout=5000", "--dump-dom", base+"/").Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	for _, want := range []string{`data-app="p2p/gossip"`, `data-pod="gossip-0"`, `data-pod="gossip-1"`, `data-pod="gossip-2"`,
		`<img src="/graph/p2p/gossip.svg?v=`, `data-rollout="p2p/web"`, `<td>frankfurt</td>`} {
		if !strings.Contains(string(dom), want) {
			t.Errorf("the rendered page lacks %s:\n%s", want, dom)
		}
	}

	// Live: a peer deleted leaves the state the page is pushed.
	events, err := http.Get(base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = events.Body.Close() }()
	if err := p.cp.Client.CoreV1().Pods("p2p").Delete(ctx, "gossip-2", metav1.DeleteOptions{GracePeriodSeconds: ptr.To(int64(0))}); err != nil {
		t.Fatal(err)
	}
	gone := make(chan bool, 1)
	go func() {
		lines := bufio.NewReader(events.Body)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				gone <- false
				return
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if ok && strings.Contains(data, `"pod":"gossip-0"`) && !strings.Contains(data, `"pod":"gossip-2"`) {
				gone <- true
				return
			}
		}
	}()
	select {
	case ok := <-gone:
		if !ok {
			t.Error("the event stream ended before the deleted peer left it")
		}
	case <-time.After(30 * time.Second):
		t.Error("the deleted peer was still in the pushed state after 30 s")
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(events.Body, 0))
}
