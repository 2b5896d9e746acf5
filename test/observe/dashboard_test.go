package observe_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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
	// An enrolled node, for the nodes table.
	if err := p.cp.KubeadmBootstrap(ctx); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"init", "--hub-endpoint", "198.18.0.1", "--skip-apiserver-cert-check"},
		{"join", "tokyo", "--node", "tokyo-2", "-f", filepath.Join(t.TempDir(), "tokyo-2.join.sh")},
	} {
		if out, err := p.stage(args...); err != nil {
			t.Fatalf("kubectl stage %v: %v\n%s", args, err, out)
		}
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
		return len(state.Apps) == 1 && len(state.Apps[0].Sites) == 3 && g.Components == 1 && g.Links == 6, nil
	})
	if err != nil {
		t.Fatalf("the dashboard's state never showed the peers and their graph: %+v", state)
	}
	if len(state.Nodes) != 1 || state.Nodes[0].Name != "tokyo-2" || state.Nodes[0].Status.State != "NotJoined" {
		t.Errorf("enrolled nodes: %+v", state.Nodes)
	}

	// The rollout runs while the page is pushed its progress: a state in
	// which some sites are updated and some are not, then the end.
	events, err := http.Get(base + "/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = events.Body.Close() }()
	progress := make(chan []string, 1)
	go func() {
		var seen []string
		lines := bufio.NewReader(events.Body)
		for {
			line, err := lines.ReadString('\n')
			if err != nil {
				progress <- seen
				return
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var st dashboard.State
			if json.Unmarshal([]byte(data), &st) != nil || len(st.Rollouts) != 1 {
				continue
			}
			updated := 0
			for _, s := range st.Rollouts[0].Status.Sites {
				updated += s.Updated
			}
			step := fmt.Sprintf("%s %d/3", st.Rollouts[0].Status.Phase, updated)
			if len(seen) == 0 || seen[len(seen)-1] != step {
				seen = append(seen, step)
			}
			if st.Rollouts[0].Status.Phase == "Complete" {
				progress <- seen
				return
			}
		}
	}()
	if out, err := p.stage("rollout", "-n", "p2p", "sts/web", "--image", "web=web:v2", "--min-ready", "2s", "--timeout", "1m"); err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	select {
	case seen := <-progress:
		t.Logf("the rollout's progress as pushed: %v", seen)
		// Each state is pushed once the page's state is rebuilt (at most
		// every 300 ms, and no faster than the API server answers), so a
		// short one may be skipped; a site part-way must be seen.
		partWay := slices.ContainsFunc(seen, func(s string) bool { return s == "Progressing 1/3" || s == "Progressing 2/3" })
		inOrder := slices.IsSortedFunc(seen, func(a, b string) int { return strings.Compare(a[len(a)-3:], b[len(b)-3:]) })
		if !partWay || !inOrder || seen[len(seen)-1] != "Complete 3/3" {
			t.Errorf("the pushed rollout progress went %v; want Progressing 1/3 or 2/3, in order, on the way to Complete 3/3", seen)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the pushed state never showed the rollout complete")
	}
	_ = events.Body.Close()
	if err := wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		state = dashboard.State{}
		return json.Unmarshal([]byte(harness.Get(t, base+"/api/state")), &state) == nil && len(state.Rollouts) == 1 && state.Rollouts[0].Status.Phase == "Complete", nil
	}); err != nil {
		t.Fatalf("the rollout is not in the state: %+v", state.Rollouts)
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
	// with its background networking off: nothing leaves this machine. It
	// is driven through the DevTools protocol, so the DOM is read once the
	// page has drawn what its event stream and the graph's SVG brought.
	allocate, cancelAllocate := chromedp.NewExecAllocator(ctx, chromedp.ExecPath(browser), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-default-apps", true), chromedp.WindowSize(1280, 1400))
	defer cancelAllocate()
	page, cancelPage := chromedp.NewContext(allocate)
	defer cancelPage()
	browse, cancelBrowse := context.WithTimeout(page, time.Minute)
	defer cancelBrowse()
	if _, err := chromedp.Run(browse, chromedp.Navigate(base+"/")); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	for _, shown := range []chromedp.CSS{`[data-rollout="p2p/web"]`, `[data-graph="p2p/gossip"] line.link.cross`} {
		if _, err := chromedp.Run(browse, chromedp.WaitVisible(shown)); err != nil {
			t.Fatalf("the page never showed %s: %v", shown, err)
		}
	}
	dom, err := chromedp.Run(browse, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	png, err := chromedp.Run(browse, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`data-app="p2p/gossip"`, `data-pod="gossip-0"`, `data-pod="gossip-1"`, `data-pod="gossip-2"`,
		`<td>frankfurt</td>`, `<td>osaka</td>`, `<td>tokyo</td>`, `<td>tokyo-2</td>`, `<td class="bad">NotJoined</td>`,
		`<div class="wave" data-site="tokyo">wave `} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %s:\n%s", want, dom)
		}
	}
	if n := strings.Count(dom, `<line class="link cross"`); n != 6 {
		t.Errorf("the page's graph has %d cross-site edges, want 6:\n%s", n, dom)
	}
	// A screenshot, kept as the test's artefact.
	artefacts := os.Getenv("STAGE_TEST_ARTIFACTS")
	if artefacts == "" {
		artefacts = filepath.Join(os.TempDir(), "kubectl-stage-artifacts")
	}
	if err := os.MkdirAll(artefacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(artefacts, "dashboard.png")
	if len(png) < 10000 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("the screenshot is not a picture of the page (%d bytes)", len(png))
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(artefacts, "graph.svg"), []byte(svg), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the dashboard: %s", shot)

	// Live: a peer deleted leaves the state the page is pushed.
	events, err = http.Get(base + "/api/events")
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
