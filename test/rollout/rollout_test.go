package rollout_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// A StatefulSet spread over three sites is updated one site per wave in
// the order asked for: the health probe sees the sites in that order, and
// a site is only touched once the one before it is done.
func TestRolloutGoesSiteBySiteInOrder(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	before := podsBySite(t, cp, "node")

	// Bad input is refused with the fix named, before anything is written.
	original, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"rollout", "node"}, "--image [CONTAINER=]IMAGE or -f FILE"},
		{[]string{"rollout", "node", "--image", "web=p2p:v2"}, `no container "web"; its containers are: node`},
		{[]string{"rollout", "node", "--image", "p2p:v2", "--waves", "canary,most"}, `"most" is not a wave`},
		{[]string{"rollout", "node", "--image", "p2p:v2", "--order", "mars"}, "its sites are: site-a, site-b, site-c"},
		{[]string{"rollout", "nodes", "--image", "p2p:v2"}, "no Deployment, StatefulSet or DaemonSet nodes in namespace default"},
		{[]string{"rollout", "pod/node", "--image", "p2p:v2"}, "rollout handles deployment/NAME"},
		{[]string{"rollout", "undo", "node"}, "no earlier revision"},
		{[]string{"rollout", "resume", "node"}, "no rollout to resume"},
		{[]string{"rollout", "pause", "node"}, "cannot be paused"},
		{[]string{"rollout", "node", "--image", "p2p:v2", "--gate-peers", "0"}, "MIN must be at least 1 (leave the flag out for no peer gate); write MIN[,cross-site=N]"},
		{[]string{"rollout", "node", "--image", "p2p:v2", "--gate-peers", "2,cross-site=3"}, "cross-site=3 cannot exceed MIN 2"},
		{[]string{"rollout", "node", "--image", "p2p:v2", "--gate-peers", "2,sites=1"}, "the only option is cross-site=N"},
		{[]string{"rollout", "node", "--image", "p2p:v2", "--on-failure", "rollback"}, `--on-failure "rollback": write pause`},
		{[]string{"rollout", "undo", "node", "--on-failure", "later"}, `--on-failure "later": write pause`},
	} {
		if _, _, err := stage(ctx, t, cp, bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("kubectl stage %v: error %v, want %q", bad.args, err, bad.want)
		}
	}
	// A user who may edit the app but not read its pods' views through the
	// pod proxy is told so before the rollout starts, not at a wave's timeout.
	if _, err := cp.Client.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "dev-view", Namespace: namespace},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dev"}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	dev, err := cp.UserConfig("dev")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = harness.RunStage(ctx, harness.WriteKubeconfig(t, dev), nil, "rollout", "node", "--image", "p2p:v2", "--gate-peers", "1")
	const wantDenied = "missing permission to gate the waves on the new pods' peer views (--gate-peers). You may not:\n" +
		"  - get pods/proxy in namespace default   (check: kubectl auth can-i get pods --subresource=proxy -n default)\n"
	if err == nil || !strings.HasPrefix(err.Error(), wantDenied) {
		t.Errorf("--gate-peers without pods/proxy: %v\nwant it to begin with:\n%s", err, wantDenied)
	}
	if now, _ := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{}); now.ResourceVersion != original.ResourceVersion {
		t.Errorf("refused commands changed the StatefulSet")
	}

	// The probe runs after a site's pods are Ready; at that moment no later
	// site may have been touched yet.
	rec := &siteRecorder{}
	var violations []string
	probe := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		site := r.URL.Query().Get("site")
		rec.add(site)
		for s, rev := range revisions(t, cp, "node") {
			if !slices.Contains(rec.sites(), s) && rev != "1:p2p:v1" {
				violations = append(violations, s+" was updated before "+site+" passed: "+rev)
			}
		}
	}))
	defer probe.Close()

	out, _, err := stage(ctx, t, cp, "rollout", "sts/node", "--image", "node=p2p:v2",
		"--order", "site-c,site-a", "--min-ready", "1s", "--timeout", "1m",
		"--health-http", probe.URL+"/healthy?site={site}")
	if err != nil {
		t.Fatalf("rollout: %v\n%s", err, out)
	}
	if got, want := rec.sites(), []string{"site-c", "site-a", "site-b"}; !slices.Equal(got, want) {
		t.Errorf("sites passed in order %v, want %v", got, want)
	}
	if len(violations) > 0 {
		t.Errorf("waves overlapped: %v", violations)
	}
	for _, want := range []string{"statefulset/node revision 2: Complete", "site-c", "Updated"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	for site, rev := range revisions(t, cp, "node") {
		if rev != "2:p2p:v2" {
			t.Errorf("site %s runs %s after the rollout, want 2:p2p:v2", site, rev)
		}
	}
	// Each pod came back at its own site, under its own name.
	after := podsBySite(t, cp, "node")
	for _, s := range sites {
		if before[s][0].Name != after[s][0].Name || before[s][0].UID == after[s][0].UID {
			t.Errorf("site %s: pod %s/%s became %s/%s, want the same name, a new pod", s, before[s][0].Name, before[s][0].UID, after[s][0].Name, after[s][0].UID)
		}
	}
	sts, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("update strategy after the rollout is %q, want the original RollingUpdate back", sts.Spec.UpdateStrategy.Type)
	}
	state, history := storedState(t, sts.Annotations)
	if state.Phase != rollout.PhaseComplete || !slices.Equal(state.Done, []string{"site-c", "site-a", "site-b"}) {
		t.Errorf("stored state %+v", state)
	}
	if len(history) != 2 || history[1].Images != "node=p2p:v2" || history[1].Result != rollout.PhaseComplete {
		t.Errorf("history %+v", history)
	}

	// Rolling out the template it already runs changes nothing.
	out, _, err = stage(ctx, t, cp, "rollout", "sts/node", "--image", "p2p:v2")
	if err != nil || !strings.Contains(out, "nothing to roll out") {
		t.Errorf("same image again: %v\n%s", err, out)
	}
	hist, _, err := stage(ctx, t, cp, "rollout", "history", "node")
	if err != nil || !strings.Contains(hist, "node=p2p:v2") || !strings.Contains(hist, "found before the first rollout") {
		t.Errorf("history: %v\n%s", err, hist)
	}
}

// A wave that cannot become Ready stops the rollout at that site with the
// scheduler's reason; the later site keeps its old pod; undo returns the
// updated sites and leaves the never-reached one alone.
func TestRolloutStopsAtFailingSiteThenUndo(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	untouched := podsBySite(t, cp, "node")["site-c"][0]
	setUnschedulable(t, cp, "node-site-b", true)

	out, _, err := stage(ctx, t, cp, "rollout", "node", "--image", "p2p:v2",
		"--order", "site-a,site-b,site-c", "--min-ready", "0s", "--timeout", "8s")
	if err == nil {
		t.Fatalf("rollout through a site that cannot schedule succeeded:\n%s", out)
	}
	for _, want := range []string{"site site-b failed", "FailedScheduling", "unschedulable", "rollout undo statefulset/node"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if !strings.Contains(out, "Failed at site site-b") || !strings.Contains(out, "NotReached") {
		t.Errorf("summary:\n%s", out)
	}
	revs := revisions(t, cp, "node")
	if revs["site-a"] != "2:p2p:v2" || revs["site-c"] != "1:p2p:v1" {
		t.Errorf("after the failure sites run %v; want site-a on 2, site-c on 1", revs)
	}
	status, _, err := stage(ctx, t, cp, "rollout", "status", "node")
	if err != nil || !strings.Contains(status, "Failed at site site-b") {
		t.Errorf("status: %v\n%s", err, status)
	}
	if _, _, err := stage(ctx, t, cp, "rollout", "status", "node", "-w"); err == nil || !strings.Contains(err.Error(), "failed at site site-b") {
		t.Errorf("status --watch of a failed rollout must exit non-zero naming the site: %v", err)
	}
	// A new rollout is refused while this one is unfinished.
	if _, _, err := stage(ctx, t, cp, "rollout", "node", "--image", "p2p:v3"); err == nil || !strings.Contains(err.Error(), "rollout resume") {
		t.Errorf("second rollout over a failed one: %v", err)
	}

	setUnschedulable(t, cp, "node-site-b", false)
	out, _, err = stage(ctx, t, cp, "rollout", "undo", "node", "--min-ready", "0s", "--timeout", "1m")
	if err != nil {
		t.Fatalf("undo: %v\n%s", err, out)
	}
	for site, rev := range revisions(t, cp, "node") {
		if rev != "1:p2p:v1" {
			t.Errorf("site %s runs %s after undo", site, rev)
		}
	}
	if now := podsBySite(t, cp, "node")["site-c"][0]; now.UID != untouched.UID {
		t.Errorf("undo replaced site-c's pod, which never left revision 1")
	}
	sts, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sts.Status.UpdateRevision != sts.Status.CurrentRevision && sts.Status.CurrentRevision != "" {
		t.Logf("statefulset revisions: current %s update %s", sts.Status.CurrentRevision, sts.Status.UpdateRevision)
	}
	if sts.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("update strategy after undo: %q", sts.Spec.UpdateStrategy.Type)
	}
	hist, _, _ := stage(ctx, t, cp, "rollout", "history", "node")
	if !strings.Contains(hist, "undo of revision 2") || !strings.Contains(hist, "Failed") {
		t.Errorf("history:\n%s", hist)
	}
}

// setUnschedulable cordons or uncordons a node, as kubectl cordon does.
func setUnschedulable(t *testing.T, cp *harness.ControlPlane, node string, on bool) {
	t.Helper()
	patch := fmt.Sprintf(`{"spec":{"unschedulable":%t}}`, on)
	if _, err := cp.Client.CoreV1().Nodes().Patch(context.Background(), node, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
}

// A health check that fails for one site stops a DaemonSet's rollout there
// with the check's own output.
func TestRolloutHealthCheckFailureStopsDaemonSet(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	if _, err := cp.Client.AppsV1().DaemonSets(namespace).Create(ctx, daemonSet("agent"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPerSite(t, cp, "agent", sites, 1)

	check := `if [ "$STAGE_ROLLOUT_SITE" = site-b ]; then echo "peer count 0 at $STAGE_ROLLOUT_SITE ($STAGE_ROLLOUT_HOST_IPS)"; exit 1; fi`
	out, _, err := stage(ctx, t, cp, "rollout", "ds/agent", "--image", "p2p:v2", "--min-ready", "0s",
		"--timeout", "1m", "--health-exec", check)
	if err == nil {
		t.Fatalf("rollout with a failing health check succeeded:\n%s", out)
	}
	for _, want := range []string{"site site-b failed", "peer count 0 at site-b (10.23.0.2)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	revs := revisions(t, cp, "agent")
	// Default waves: canary (site-a), then one site at a time.
	if revs["site-a"] != "2:p2p:v2" || revs["site-c"] != "1:p2p:v1" {
		t.Errorf("sites run %v; want site-a on 2 and site-c untouched", revs)
	}
	ds, err := cp.Client.AppsV1().DaemonSets(namespace).Get(ctx, "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType {
		t.Errorf("a failed rollout must keep OnDelete so the controller leaves site-c alone; strategy is %q", ds.Spec.UpdateStrategy.Type)
	}
}

// A Deployment is split into per-site Deployments wave by wave; a pause
// from a second invocation stops the first after its wave, a third
// invocation resumes and completes it.
func TestRolloutPauseResumeAcrossInvocations(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	if _, err := cp.Client.AppsV1().Deployments(namespace).Create(ctx, deployment("web", 6), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPerSite(t, cp, "web", sites, 2)

	// The canary's health check holds the wave until the test has paused
	// the rollout from another invocation.
	dir := t.TempDir()
	reached, release := filepath.Join(dir, "reached"), filepath.Join(dir, "release")
	check := `touch ` + reached + `; while [ ! -e ` + release + ` ]; do sleep 0.05; done`
	first := make(chan error, 1)
	var firstOut string
	go func() {
		out, _, err := stage(ctx, t, cp, "rollout", "deploy/web", "--image", "p2p:v2", "--min-ready", "0s",
			"--timeout", "1m", "--health-exec", check)
		firstOut = out
		first <- err
	}()
	waitFile(t, reached)
	// A watcher in yet another invocation follows the rollout until the pause.
	watched := make(chan string, 1)
	go func() {
		out, _, err := stage(ctx, t, cp, "rollout", "status", "web", "--watch")
		if err != nil {
			out += "error: " + err.Error()
		}
		watched <- out
	}()
	out, _, err := stage(ctx, t, cp, "rollout", "pause", "web")
	if err != nil || !strings.Contains(out, "paused") {
		t.Fatalf("pause: %v\n%s", err, out)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-first; err != nil {
		t.Fatalf("the paused rollout should end without error: %v\n%s", err, firstOut)
	}
	if !strings.Contains(firstOut, "Paused") {
		t.Errorf("summary of the paused rollout:\n%s", firstOut)
	}
	if out := <-watched; !strings.Contains(out, "deployment/web revision 2: Paused") || strings.Contains(out, "error:") {
		t.Errorf("status --watch should end with the pause:\n%s", out)
	}
	revs := revisions(t, cp, "web")
	if revs["site-a"] != "2:p2p:v2" || revs["site-b"] != "1:p2p:v1" || revs["site-c"] != "1:p2p:v1" {
		t.Fatalf("after the pause sites run %v; want only the canary site-a on 2", revs)
	}
	status, _, err := stage(ctx, t, cp, "rollout", "status", "web", "-o", "jsonpath={.kind} {.status.phase} {.status.sites[*].result}")
	if err != nil || status != "Rollout Paused Updated NotReached NotReached" {
		t.Errorf("status -o jsonpath: %v\n%q", err, status)
	}
	names, _, err := stage(ctx, t, cp, "rollout", "history", "web", "-o", "name")
	if err != nil || names != "rolloutrevision.kubectl-stage.io/web-1\nrolloutrevision.kubectl-stage.io/web-2\n" {
		t.Errorf("history -o name: %v\n%q", err, names)
	}
	image, _, err := stage(ctx, t, cp, "rollout", "history", "web", "--revision", "2", "-o", "go-template={{(index .template.spec.containers 0).image}}")
	if err != nil || image != "p2p:v2" {
		t.Errorf("history --revision 2 -o go-template: %v\n%q", err, image)
	}

	// Health check released: resume only has to pass.
	out, _, err = stage(ctx, t, cp, "rollout", "resume", "deploy/web")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	if !strings.Contains(out, "revision 2: Complete") {
		t.Errorf("resume summary:\n%s", out)
	}
	for site, rev := range revisions(t, cp, "web") {
		if rev != "2:p2p:v2" {
			t.Errorf("site %s runs %s", site, rev)
		}
	}
	for _, s := range sites {
		child, err := cp.Client.AppsV1().Deployments(namespace).Get(ctx, rollout.SiteDeploymentName("web", s), metav1.GetOptions{})
		if err != nil {
			t.Fatalf("site deployment for %s: %v", s, err)
		}
		if *child.Spec.Replicas != 2 || child.Spec.Template.Spec.NodeSelector[api.LabelSite] != s {
			t.Errorf("site deployment %s: replicas %d, node selector %v", child.Name, *child.Spec.Replicas, child.Spec.Template.Spec.NodeSelector)
		}
	}
	parent, err := cp.Client.AppsV1().Deployments(namespace).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *parent.Spec.Replicas != 0 || parent.Spec.Template.Spec.Containers[0].Image != "p2p:v2" {
		t.Errorf("original deployment: replicas %d image %s; want 0 and the new template", *parent.Spec.Replicas, parent.Spec.Template.Spec.Containers[0].Image)
	}
	waitReadyPerSite(t, cp, "web", sites, 2)

	// The next rollout updates the site Deployments in place.
	out, _, err = stage(ctx, t, cp, "rollout", "deploy/web", "--image", "p2p:v3", "--min-ready", "0s", "--waves", "rest", "--max-sites-at-once", "0")
	if err != nil {
		t.Fatalf("second rollout: %v\n%s", err, out)
	}
	for site, rev := range revisions(t, cp, "web") {
		if rev != "3:p2p:v3" {
			t.Errorf("site %s runs %s after the second rollout", site, rev)
		}
	}
}

// Ctrl-C during a wave leaves a state that resume, run again with the
// gates stored in the cluster, completes.
func TestRolloutInterruptedThenResumed(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	deployStatefulSet(t, cp)
	interrupted, cancel := context.WithCancel(ctx)
	dir := t.TempDir()
	reached, release := filepath.Join(dir, "reached"), filepath.Join(dir, "release")
	go func() { waitFile(t, reached); cancel() }()
	check := `[ "$STAGE_ROLLOUT_SITE" != site-b ] || [ -e ` + release + ` ] || { touch ` + reached + `; sleep 20; }`
	_, _, err := stage(interrupted, t, cp, "rollout", "node", "--image", "p2p:v2", "--min-ready", "0s", "--health-exec", check)
	if err == nil || !strings.Contains(err.Error(), "rollout resume") {
		t.Fatalf("interrupted rollout: %v", err)
	}
	status, _, _ := stage(ctx, t, cp, "rollout", "status", "node")
	if !strings.Contains(status, "Progressing") {
		t.Errorf("status after the interrupt:\n%s", status)
	}
	if revs := revisions(t, cp, "node"); revs["site-c"] != "1:p2p:v1" || revs["site-a"] != "2:p2p:v2" {
		t.Errorf("after the interrupt sites run %v", revs)
	}
	if err := os.WriteFile(release, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, _, err := stage(ctx, t, cp, "rollout", "resume", "node")
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	for site, rev := range revisions(t, cp, "node") {
		if rev != "2:p2p:v2" {
			t.Errorf("site %s runs %s after resume", site, rev)
		}
	}
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		_, err := os.Stat(path)
		return err == nil, nil
	})
	if err != nil {
		t.Fatalf("%s never appeared", path)
	}
}

// Two users start rollouts of the same app at once: one wins, the other is
// refused without overwriting it (no lost update).
func TestConcurrentRolloutsDoNotOverwriteEachOther(t *testing.T) {
	cp := cluster(t, sites)
	ctx := context.Background()
	if _, err := cp.Client.AppsV1().DaemonSets(namespace).Create(ctx, daemonSet("agent"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReadyPerSite(t, cp, "agent", sites, 1)
	errs := make(chan error, 2)
	for _, image := range []string{"p2p:v2", "p2p:v3"} {
		go func() {
			_, _, err := stage(ctx, t, cp, "rollout", "ds/agent", "--image", image, "--min-ready", "0s", "--waves", "rest", "--max-sites-at-once", "0")
			errs <- err
		}()
	}
	var failures []error
	for range 2 {
		if err := <-errs; err != nil {
			failures = append(failures, err)
		}
	}
	if len(failures) != 1 {
		t.Fatalf("want exactly one rollout refused, got %v", failures)
	}
	// The loser planned either over the winner's stored plan, or while the
	// winner was committing it, or found the winner holding the rollout's
	// lease: each has its own exact refusal.
	refusal := regexp.MustCompile(`^(another rollout of daemonset/agent started while this one was being planned; see kubectl stage rollout status daemonset/agent` +
		`|taking lease default/kubectl-stage-rollout-daemonset-agent: the rollout is being driven by kubectl stage rollout \(.+, pid [0-9]+\) \(lease default/kubectl-stage-rollout-daemonset-agent, held until .+ unless renewed\); follow it with kubectl stage rollout status -w, or pause it with kubectl stage rollout pause` +
		`|a rollout of daemonset/agent to revision 2 is progressing \([0-3] of 3 sites done\); continue it with kubectl stage rollout resume daemonset/agent, or return every site with kubectl stage rollout undo daemonset/agent)$`)
	if msg := failures[0].Error(); !refusal.MatchString(msg) {
		t.Errorf("the refused rollout said %q, want one of the three refusals", msg)
	}
	ds, err := cp.Client.AppsV1().DaemonSets(namespace).Get(ctx, "agent", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	state, history := storedState(t, ds.Annotations)
	winner := history[len(history)-1]
	if state.Phase != rollout.PhaseComplete || state.Revision != 2 || len(history) != 2 || winner.Images != "node="+ds.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("state %+v, history %+v", state, history)
	}
	for site, rev := range revisions(t, cp, "agent") {
		if rev != "2:"+ds.Spec.Template.Spec.Containers[0].Image {
			t.Errorf("site %s runs %s, want the winner's revision everywhere", site, rev)
		}
	}
}
