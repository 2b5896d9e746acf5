package rollout_test

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const gossipPort = 17946

// lines records what a command prints, for a test to wait on.
type lines struct {
	mu  sync.Mutex
	buf strings.Builder
	t   testing.TB
}

func (l *lines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return l.buf.Write(p)
}

func (l *lines) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// --gate-peers holds a site's wave until its new peer's own view, read
// through the API server's pod proxy from a real gossip process, lists a
// peer at another site: site-b's new peer first serves nothing, then
// starts with no seeds and knows nobody; the wave passes only once a peer
// seeded with it makes it known, and site-c is not touched meanwhile.
// Then --on-failure undo: a rollout whose second site fails its health
// probe returns every site to the previous revision by itself. Last, the
// in-cluster runner applies both as stored in the state: a detached
// rollout held by the peer gate fails at --timeout and the controller
// undoes it.
func TestPeerGateAndOnFailureUndo(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the peers serve on addresses of an interface the test creates")
	}
	ips := harness.HostAddresses(t, len(sites))
	cp := clusterAt(t, sites, ips)
	ctx := context.Background()
	sts := statefulSet("node", int32(len(sites)))
	sts.Spec.Template.Spec.HostNetwork = true
	sts.Spec.Template.Annotations = map[string]string{
		api.AnnotationPort: fmt.Sprint(gossipPort), api.AnnotationPeersEndpoint: fmt.Sprintf(":%d/peers", gossipPort),
	}
	if _, err := cp.Client.AppsV1().StatefulSets(namespace).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPerSite(t, cp, "node", sites, 1)

	gossip, logs := harness.Build(t, "./examples/gossip"), t.TempDir()
	addr := func(site int) string { return fmt.Sprintf("%s:%d", ips[site], gossipPort) }
	peer := func(site int, seeds ...string) *harness.Daemon {
		name := "gossip-" + sites[site]
		return harness.StartGossip(t, gossip, harness.Gossip{Name: name, Site: sites[site], Addr: addr(site), Seeds: seeds},
			filepath.Join(logs, fmt.Sprintf("%s-%d.log", name, time.Now().UnixNano())))
	}
	// site-a and site-c know each other; nothing serves at site-b yet.
	peer(0)
	siteC := peer(2, addr(0))

	stored := func() (*rollout.State, rollout.History) {
		t.Helper()
		got, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return storedState(t, got.Annotations)
	}
	// heldAtB checks that the rollout stands at site-b's wave: site-a done,
	// site-b moved, site-c untouched.
	heldAtB := func(when string) {
		t.Helper()
		if s, _ := stored(); s.Phase != rollout.PhaseProgressing || !slices.Equal(s.Done, []string{"site-a"}) || !slices.Equal(s.Moving, []string{"site-b"}) {
			t.Errorf("%s: phase %s, done %v, moving %v; want Progressing, site-a done, site-b moving", when, s.Phase, s.Done, s.Moving)
		}
		want := map[string]string{"site-a": "2:p2p:v2", "site-b": "2:p2p:v2", "site-c": "1:p2p:v1"}
		if got := revisions(t, cp, "node"); !maps.Equal(got, want) {
			t.Errorf("%s: sites run %v, want %v", when, got, want)
		}
	}

	progress := &lines{t: t}
	done := make(chan error, 1)
	var out string
	// Ended with the test, before the control plane stops.
	runCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	go func() {
		var err error
		out, _, err = harness.RunStage(runCtx, cp.Kubeconfig, progress, "rollout", "sts/node", "--image", "p2p:v2",
			"--order", "site-a,site-b,site-c", "--min-ready", "0s", "--timeout", "5m", "--gate-peers", "1,cross-site=1")
		done <- err
	}()
	harness.WaitFor(t, "site-b's wave held because its new peer's view cannot be read", 2*time.Minute, 100*time.Millisecond, func() bool {
		return progress.has(": its peer view could not be read: GET 17946/peers through the API server: ")
	})
	heldAtB("while site-b's view could not be read")

	// site-b's peer starts with no seeds: it answers, knowing nobody.
	peer(1)
	harness.WaitFor(t, "site-b's wave held because its new peer knows nobody", time.Minute, 100*time.Millisecond, func() bool {
		return progress.has(": its view lists 0 peers, 0 at other sites (--gate-peers wants 1,cross-site=1)")
	})
	heldAtB("while site-b's peer knew nobody")

	// site-c's peer comes back seeded with site-b: site-b finds its peers.
	siteC.Stop()
	peer(2, addr(0), addr(1))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("rollout with --gate-peers: %v\n%s", err, out)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("the rollout never finished after site-b found its peers")
	}
	if s, _ := stored(); s.Phase != rollout.PhaseComplete || !slices.Equal(s.Done, []string{"site-a", "site-b", "site-c"}) || s.Gates.Peers != (rollout.PeerGate{Min: 1, CrossSite: 1}) || s.Version != 2 {
		t.Errorf("after the gated rollout: phase %s, done %v, gates %+v, state version %d", s.Phase, s.Done, s.Gates, s.Version)
	}
	for site, rev := range revisions(t, cp, "node") {
		if rev != "2:p2p:v2" {
			t.Errorf("site %s runs %s after the gated rollout", site, rev)
		}
	}

	// --on-failure undo: site-b fails its health probe on revision 3;
	// every site goes back to revision 2 by itself (the undo's own waves
	// pass the probe), and site-c is never touched.
	untouched := podsBySite(t, cp, "node")["site-c"][0].UID
	// undone checks that every site is back on revision 2 and that site-c,
	// which the failed rollouts never reached, kept its pod.
	undone := func(after string) {
		t.Helper()
		for site, rev := range revisions(t, cp, "node") {
			if rev != "2:p2p:v2" {
				t.Errorf("site %s runs %s after %s, want 2:p2p:v2", site, rev, after)
			}
		}
		if now := podsBySite(t, cp, "node")["site-c"][0].UID; now != untouched {
			t.Errorf("site-c's pod was replaced (%s became %s) by %s, though the failed rollout never reached it", untouched, now, after)
		}
	}
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site := r.URL.Query().Get("site")
		if site == "site-b" && revisions(t, cp, "node")[site] == "3:p2p:v3" {
			http.Error(w, "site-b is sick on v3", http.StatusServiceUnavailable)
		}
	}))
	defer probe.Close()
	out, _, err := stage(ctx, t, cp, "rollout", "sts/node", "--image", "p2p:v3", "--order", "site-a,site-b,site-c", "--min-ready", "0s",
		"--health-http", probe.URL+"/healthy?site={site}", "--on-failure", "undo")
	want := "rollout of statefulset/node to revision 3 failed: site site-b failed: health probe " + probe.URL + "/healthy?site=site-b answered 503 Service Unavailable: site-b is sick on v3; --on-failure undo returned every site to revision 2"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("rollout --on-failure undo: %v, want %q\n%s", err, want, out)
	}
	undone("the automatic undo")
	state, history := stored()
	cause := "undo of revision 3 by --on-failure undo: site site-b failed: health probe"
	if state.Phase != rollout.PhaseComplete || state.Revision != 2 || !strings.HasPrefix(state.Cause, cause) {
		t.Errorf("after the automatic undo: phase %s, revision %d, cause %q; want Complete, 2, %q", state.Phase, state.Revision, state.Cause, cause)
	}
	if !failedIn(history, 3) {
		t.Errorf("history: revision 3 is not Failed: %+v", history)
	}
	if last := history[len(history)-1]; last.Number != 2 || !strings.HasPrefix(last.Cause, cause) {
		t.Errorf("history's current revision %d %q, want 2 caused by the automatic undo", last.Number, last.Cause)
	}
	status, _, err := stage(ctx, t, cp, "rollout", "status", "node")
	if err != nil || !strings.Contains(status, "statefulset/node revision 2: Complete ("+cause) {
		t.Errorf("status after the automatic undo: %v\n%s", err, status)
	}

	// The in-cluster runner applies the gates stored in the state: a
	// detached rollout whose new peer can never list 5 peers is held at
	// site-a, fails there at --timeout, and is undone by the controller.
	startController(t, cp, harness.Build(t, "./cmd/stage-rollout-controller"), "replica-1")
	if _, _, err := stage(ctx, t, cp, "rollout", "sts/node", "--image", "p2p:v4", "--order", "site-a,site-b,site-c", "--min-ready", "0s",
		"--timeout", "20s", "--gate-peers", "5", "--on-failure", "undo", "--detach"); err != nil {
		t.Fatalf("detached gated rollout: %v", err)
	}
	followCtx, stopFollowing := context.WithTimeout(ctx, followTimeout)
	defer stopFollowing()
	followed, followErr, err := stage(followCtx, t, cp, "rollout", "status", "node", "-w")
	if err != nil || !strings.Contains(followed, "statefulset/node revision 2: Complete (undo of revision 4 by --on-failure undo: site site-a failed: the peer gate was not met after 20s: ") ||
		!strings.Contains(followed, "(--gate-peers wants 5)") || !strings.Contains(followErr, "revision 2: Progressing") {
		t.Errorf("status -w of the detached gated rollout: %v\n%s\n%s", err, followed, followErr)
	}
	undone("the controller's undo")
	if _, history := stored(); !failedIn(history, 4) {
		t.Errorf("history after the controller's undo: revision 4 is not Failed: %+v", history)
	}
}

// failedIn reports whether the history has revision n, Failed.
func failedIn(history rollout.History, n int) bool {
	rev, ok := history.Find(n)
	return ok && rev.Result == rollout.PhaseFailed
}
