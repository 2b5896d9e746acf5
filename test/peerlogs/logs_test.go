// Package peerlogs_test proves `kubectl stage logs` against a real API
// server: kwok plays the kubelets of nodes at three sites and serves files
// as the pods' container logs (kwok Logs), which the API server fetches
// from kwok's kubelet endpoint exactly as from a real kubelet.
package peerlogs_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

const ns = "p2p"

// sites of the peers: pod gossip-SITE on node n-SITE; gossip-late joins a
// followed stream at paris.
var peerSites = []string{"tokyo", "paris", "lima"}

// logFile is a container log in the CRI format a kubelet reads.
type logFile struct {
	path string
}

func (f logFile) append(t testing.TB, at time.Time, texts ...string) {
	t.Helper()
	out, err := os.OpenFile(f.path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	for i, text := range texts {
		stamp := at.Add(time.Duration(i) * time.Millisecond).UTC().Format(time.RFC3339Nano)
		if _, err := fmt.Fprintf(out, "%s stdout F %s\n", stamp, text); err != nil {
			t.Fatal(err)
		}
	}
}

// kubeletStamp is how the kubelet (and kwok) print a line's time.
func kubeletStamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") }

func TestLogs(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	files := map[string]logFile{}
	var docs []string
	for _, pod := range []string{"gossip-tokyo", "gossip-paris", "gossip-lima", "gossip-late", "other-tokyo"} {
		files[pod] = logFile{filepath.Join(dir, pod+".log")}
		docs = append(docs, kwokLogs(pod, files[pod].path))
	}

	// Two hours ago each peer started; a minute ago they met. The lines
	// interleave across peers, so only a merge by time prints them in order.
	old := time.Now().Add(-2 * time.Hour).Truncate(time.Second)
	recent := time.Now().Add(-time.Minute).Truncate(time.Second)
	sec := func(base time.Time, n int) time.Time { return base.Add(time.Duration(n) * time.Second) }
	files["gossip-tokyo"].append(t, sec(old, 1), "tokyo up")
	files["gossip-paris"].append(t, sec(old, 2), "paris up")
	files["gossip-lima"].append(t, sec(old, 3), "lima up")
	files["gossip-tokyo"].append(t, sec(recent, 4), "tokyo sees paris")
	files["gossip-lima"].append(t, sec(recent, 5), "lima sees tokyo")
	files["gossip-paris"].append(t, sec(recent, 6), "paris sees lima", "paris sees tokyo")
	files["other-tokyo"].append(t, sec(old, 1), "not a peer")
	files["gossip-late"].append(t, sec(recent, 7), "late up")
	prev := logFile{files["gossip-lima"].path + ".previous"}
	prev.append(t, sec(old, 0), "lima crashed")

	opts := harness.All()
	opts.KwokStages = docs
	cp := harness.StartForTest(t, opts)
	for _, site := range peerSites {
		// kwok's kubelet endpoint listens on 127.0.0.1: the API server
		// reaches every node's "kubelet" there.
		if _, err := cp.AddNode(ctx, harness.Node{Name: "n-" + site, Site: site, InternalIP: "127.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, site := range peerSites {
		createPod(t, cp, "gossip-"+site, "n-"+site, true)
	}
	createPod(t, cp, "other-tokyo", "n-tokyo", false)
	// A StatefulSet selecting the peers; with no replicas and other names
	// it adopts none of them.
	zero := int32(0)
	sts := &appsv1.StatefulSet{
		ObjectMeta: metav1.ObjectMeta{Name: "gossip", Namespace: ns},
		Spec: appsv1.StatefulSetSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "gossip"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "gossip"}},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "gossip", Image: "gossip"}}},
			},
		},
	}
	if _, err := cp.Client.AppsV1().StatefulSets(ns).Create(ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	const (
		tokyo = "[tokyo/n-tokyo/gossip-tokyo] "
		paris = "[paris/n-paris/gossip-paris] "
		lima  = "[lima/n-lima/gossip-lima] "
		late  = "[paris/n-paris/gossip-late] "
	)
	all := tokyo + "tokyo up\n" + paris + "paris up\n" + lima + "lima up\n" +
		tokyo + "tokyo sees paris\n" + lima + "lima sees tokyo\n" + paris + "paris sees lima\n" + paris + "paris sees tokyo\n"

	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr string
	}{
		{name: "every peer merged by time", args: []string{"gossip"}, want: all},
		{name: "TYPE/NAME uses the workload's selector", args: []string{"sts/gossip"}, want: all},
		{name: "at two sites", args: []string{"gossip", "--site", "tokyo,lima"},
			want: tokyo + "tokyo up\n" + lima + "lima up\n" + tokyo + "tokyo sees paris\n" + lima + "lima sees tokyo\n"},
		{name: "tail", args: []string{"gossip", "--tail", "1"},
			want: tokyo + "tokyo sees paris\n" + lima + "lima sees tokyo\n" + paris + "paris sees tokyo\n"},
		{name: "since", args: []string{"gossip", "--since", "1h"},
			want: tokyo + "tokyo sees paris\n" + lima + "lima sees tokyo\n" + paris + "paris sees lima\n" + paris + "paris sees tokyo\n"},
		{name: "since-time", args: []string{"gossip", "--since-time", sec(old, 2).UTC().Format(time.RFC3339), "--site", "tokyo"},
			want: tokyo + "tokyo sees paris\n"},
		{name: "timestamps kept", args: []string{"gossip", "--timestamps", "--site", "paris"},
			want: paris + kubeletStamp(sec(old, 2)) + " paris up\n" + paris + kubeletStamp(sec(recent, 6)) + " paris sees lima\n" +
				paris + kubeletStamp(sec(recent, 6).Add(time.Millisecond)) + " paris sees tokyo\n"},
		{name: "no prefix", args: []string{"gossip", "--prefix=false", "--site", "lima"}, want: "lima up\nlima sees tokyo\n"},
		{name: "previous", args: []string{"gossip", "--previous", "--site", "lima"}, want: lima + "lima crashed\n"},
		{name: "colour always", args: []string{"gossip", "--color", "always", "--site", "paris", "--tail", "1"},
			want: "\x1b[31m[paris/n-paris/gossip-paris]\x1b[0m paris sees tokyo\n"},

		{name: "unknown app", args: []string{"gosip"},
			wantErr: `no running pods of app "gosip" in namespace "p2p" (label kubectl-stage.io/app=gosip): check the app name and -n; the stage webhook sets kubectl-stage.io/app on the pods it admits (opt in with kubectl-stage.io/inject=enabled, then deploy or kubectl stage rollout the app)`},
		{name: "unknown site", args: []string{"gossip", "--site", "mars"},
			wantErr: `unknown site "mars": the sites are lima, paris, tokyo (kubectl stage sites)`},
		{name: "bad TYPE/NAME", args: []string{"pod/gossip-lima"},
			wantErr: `"pod/gossip-lima": logs reads APP (the app's name) or deployment/NAME, statefulset/NAME, daemonset/NAME`},
		{name: "missing workload", args: []string{"deploy/gossip"},
			wantErr: `deployment/gossip not found in namespace "p2p": check the name and -n`},
		{name: "unknown container", args: []string{"gossip", "-c", "db"},
			wantErr: `pod gossip-lima has no container "db" (its containers: gossip); choose one with -c`},
		{name: "too many streams to follow", args: []string{"gossip", "-f", "--max-log-requests", "2"},
			wantErr: `following 3 peers needs 3 log streams at once, more than the limit of 2: raise it with --max-log-requests=3, or choose fewer peers with --site`},
		{name: "since and since-time", args: []string{"gossip", "--since", "1h", "--since-time", "2026-01-01T00:00:00Z"},
			wantErr: `--since and --since-time cannot be used together: choose one`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			out, errOut, err := harness.RunStage(ctx, cp.Kubeconfig, nil, append([]string{"logs", "-n", ns}, tt.args...)...)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error:\n  %v\nwant\n  %s\nstdout:\n%s", err, tt.wantErr, out)
				}
				return
			}
			if err != nil {
				t.Fatalf("kubectl stage logs %s: %v\n%s", strings.Join(tt.args, " "), err, errOut)
			}
			if out != tt.want {
				t.Errorf("kubectl stage logs %s printed:\n%s\nwant:\n%s", strings.Join(tt.args, " "), out, tt.want)
			}
		})
	}

	t.Run("missing permission", func(t *testing.T) {
		// dev may read pods in p2p, but neither their logs nor the nodes.
		role := &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "pod-reader", Namespace: ns},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}}},
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "dev-pod-reader", Namespace: ns},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "dev"}},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
		}
		if _, err := cp.Client.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cp.Client.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		dev, err := cp.UserConfig("dev")
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = harness.RunStage(ctx, harness.WriteKubeconfig(t, dev), nil, "logs", "gossip", "-n", ns, "-f")
		want := `missing permission to read the logs of app "gossip" in namespace p2p. You may not:
  - list nodes (cluster-wide)   (check: kubectl auth can-i list nodes)
  - get pods/log in namespace p2p   (check: kubectl auth can-i get pods --subresource=log -n p2p)
ask a cluster administrator to grant these verbs (for example through a ClusterRole bound to you), or use a kubeconfig context that has them`
		if err == nil || err.Error() != want {
			t.Fatalf("error:\n%v\nwant:\n%s", err, want)
		}
	})

	t.Run("follow", func(t *testing.T) {
		bin := harness.BuildStage(t)
		cmd := exec.Command(bin, "--kubeconfig", cp.Kubeconfig, "logs", "gossip", "-n", ns, "-f", "--since", "1h")
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill() }()
		outLines, errLines := lines(stdout), lines(stderr)

		expect(t, "stdout", outLines, tokyo+"tokyo sees paris", lima+"lima sees tokyo", paris+"paris sees lima", paris+"paris sees tokyo")
		expect(t, "stderr", errLines, "+ "+strings.TrimSpace(lima), "+ "+strings.TrimSpace(paris), "+ "+strings.TrimSpace(tokyo))

		// New lines of a running peer.
		files["gossip-tokyo"].append(t, time.Now(), "tokyo still here")
		expect(t, "stdout", outLines, tokyo+"tokyo still here")

		// A peer created after the start joins the stream.
		createPod(t, cp, "gossip-late", "n-paris", true)
		expect(t, "stderr", errLines, "+ "+strings.TrimSpace(late))
		expect(t, "stdout", outLines, late+"late up")

		// A deleted peer leaves it: its later lines are not shown.
		zero := int64(0)
		if err := cp.Client.CoreV1().Pods(ns).Delete(ctx, "gossip-lima", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Fatal(err)
		}
		expect(t, "stderr", errLines, "- "+strings.TrimSpace(lima))
		files["gossip-lima"].append(t, time.Now(), "lima after its deletion")
		files["gossip-tokyo"].append(t, time.Now().Add(time.Millisecond), "tokyo after lima left")
		expect(t, "stdout", outLines, tokyo+"tokyo after lima left")
		select {
		case l := <-outLines:
			t.Errorf("unexpected line after lima left: %q", l)
		case <-time.After(time.Second):
		}

		// Ctrl-C ends it cleanly.
		start := time.Now()
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("kubectl stage logs -f after SIGINT: %v, want exit 0", err)
			}
			t.Logf("exited %v after SIGINT", time.Since(start).Round(time.Millisecond))
		case <-time.After(10 * time.Second):
			t.Fatal("kubectl stage logs -f still runs 10s after SIGINT")
		}
	})
}

// kwokLogs is the kwok document that serves path as the log of pod's
// container gossip (and path.previous as its previous log).
func kwokLogs(pod, path string) string {
	return fmt.Sprintf(`apiVersion: kwok.x-k8s.io/v1alpha1
kind: Logs
metadata:
  name: %s
  namespace: %s
spec:
  logs:
  - containers: [gossip]
    logsFile: %s
    previousLogsFile: %s`, pod, ns, path, path+".previous")
}

func createPod(t testing.TB, cp *harness.ControlPlane, name, node string, peer bool) {
	t.Helper()
	labels := map[string]string{"app": "other"}
	if peer {
		labels = map[string]string{"app": "gossip", api.LabelApp: "gossip"}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "gossip", Image: "gossip"}}},
	}
	if _, err := cp.Client.CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, cp, 1, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
}

// waitRunning waits until n pods of the list are Running.
func waitRunning(t testing.TB, cp *harness.ControlPlane, n int, opts metav1.ListOptions) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := cp.Client.CoreV1().Pods(ns).List(ctx, opts)
		if err != nil {
			return false, nil
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase == corev1.PodRunning {
				running++
			}
		}
		return running == n, nil
	})
	if err != nil {
		t.Fatalf("waiting for %d Running pods (%+v): %v", n, opts, err)
	}
}

// lines reads r's lines into a channel.
func lines(r interface{ Read([]byte) (int, error) }) <-chan string {
	ch := make(chan string, 100)
	go func() {
		s := bufio.NewScanner(r)
		for s.Scan() {
			ch <- s.Text()
		}
		close(ch)
	}()
	return ch
}

// expect reads the next len(want) lines of ch, in any order, and fails
// unless they are exactly want.
func expect(t *testing.T, name string, ch <-chan string, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(30 * time.Second)
	for len(got) < len(want) {
		select {
		case l, ok := <-ch:
			if !ok {
				t.Fatalf("%s ended; got %q, want %q", name, got, want)
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("%s: got %q after 30s, want %q", name, got, want)
		}
	}
	slices.Sort(got)
	sorted := slices.Clone(want)
	slices.Sort(sorted)
	if !slices.Equal(got, sorted) {
		t.Fatalf("%s: got %q, want %q", name, got, want)
	}
}
