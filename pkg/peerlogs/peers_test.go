package peerlogs

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

func pod(name, node string, phase corev1.PodPhase, containers ...string) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "p2p", UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     corev1.PodStatus{Phase: phase},
	}
	if len(containers) == 0 {
		containers = []string{"gossip"}
	}
	for _, c := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
	}
	return p
}

func describe(peers []Peer) string {
	var s []string
	for _, p := range peers {
		s = append(s, fmt.Sprintf("%d:%s:%s", p.Index, p.Prefix(), p.Container))
	}
	return strings.Join(s, " ")
}

func TestSelect(t *testing.T) {
	siteOf := map[string]string{"n-tokyo": "tokyo", "n-paris": "paris", "n-paris2": "paris", "n-bare": ""}
	deleting := pod("gossip-gone", "n-paris", corev1.PodRunning)
	deleting.DeletionTimestamp = &metav1.Time{}
	defaulted := pod("gossip-sidecar", "n-tokyo", corev1.PodRunning, "proxy", "gossip")
	defaulted.Annotations = map[string]string{defaultContainerAnnotation: "gossip"}
	all := []*corev1.Pod{
		pod("gossip-2", "n-tokyo", corev1.PodRunning),
		pod("gossip-1", "n-paris2", corev1.PodSucceeded),
		pod("gossip-0", "n-paris", corev1.PodFailed),
		pod("gossip-pending", "n-paris", corev1.PodPending),
		pod("gossip-unbound", "", corev1.PodRunning),
		pod("gossip-nosite", "n-bare", corev1.PodRunning),
		deleting,
	}
	tests := []struct {
		name      string
		pods      []*corev1.Pod
		sites     []string
		container string
		want      string
		wantErr   string
	}{
		{
			name: "pods with a log, by site, node, pod",
			pods: all,
			want: "0:<none>/n-bare/gossip-nosite:gossip 1:paris/n-paris/gossip-0:gossip 2:paris/n-paris2/gossip-1:gossip 3:tokyo/n-tokyo/gossip-2:gossip",
		},
		{name: "at chosen sites", pods: all, sites: []string{"tokyo", "paris"},
			want: "0:paris/n-paris/gossip-0:gossip 1:paris/n-paris2/gossip-1:gossip 2:tokyo/n-tokyo/gossip-2:gossip"},
		{name: "none at the site", pods: all, sites: []string{"lima"}, want: ""},
		{name: "the default-container annotation", pods: []*corev1.Pod{defaulted}, want: "0:tokyo/n-tokyo/gossip-sidecar:gossip"},
		{name: "the first container otherwise", pods: []*corev1.Pod{pod("gossip-9", "n-tokyo", corev1.PodRunning, "a", "b")}, want: "0:tokyo/n-tokyo/gossip-9:a"},
		{name: "-c chooses", pods: []*corev1.Pod{defaulted}, container: "proxy", want: "0:tokyo/n-tokyo/gossip-sidecar:proxy"},
		{name: "-c names a container the pod lacks", pods: []*corev1.Pod{defaulted}, container: "db",
			wantErr: `pod gossip-sidecar has no container "db" (its containers: proxy, gossip); choose one with -c`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Select(tt.pods, siteOf, tt.sites, tt.container)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("Select error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := describe(got); d != tt.want {
				t.Errorf("Select =\n  %s\nwant\n  %s", d, tt.want)
			}
		})
	}
}

func TestCheckSites(t *testing.T) {
	tests := []struct {
		name         string
		sites, known []string
		want         string
	}{
		{"every site", nil, []string{"paris"}, ""},
		{"known", []string{"paris", "tokyo"}, []string{"paris", "tokyo"}, ""},
		{"unknown", []string{"paris", "lima", "oslo"}, []string{"paris", "tokyo"}, `unknown site "lima", "oslo": the sites are paris, tokyo (kubectl stage sites)`},
		{"no sites yet", []string{"lima"}, nil, `unknown site "lima": no node has a site label yet (kubectl stage join SITE)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSites(tt.sites, tt.known)
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("CheckSites = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		arg     string
		want    Target
		wantErr string
	}{
		{arg: "gossip", want: Target{App: "gossip"}},
		{arg: "deploy/gossip", want: Target{Kind: "Deployment", Name: "gossip"}},
		{arg: "StatefulSet/node", want: Target{Kind: "StatefulSet", Name: "node"}},
		{arg: "ds/agent", want: Target{Kind: "DaemonSet", Name: "agent"}},
		{arg: "pod/gossip-0", wantErr: `"pod/gossip-0": logs reads APP (the app's name) or deployment/NAME, statefulset/NAME, daemonset/NAME`},
		{arg: "deployment/", wantErr: `"deployment/": logs reads APP (the app's name) or deployment/NAME, statefulset/NAME, daemonset/NAME`},
		{arg: "", wantErr: "APP is empty: give the app name or TYPE/NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.arg, func(t *testing.T) {
			got, err := ParseTarget(tt.arg)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseTarget(%q) error = %v, want %q", tt.arg, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("ParseTarget(%q) = %+v, %v; want %+v", tt.arg, got, err, tt.want)
			}
		})
	}
}

func TestNoPodsError(t *testing.T) {
	app := labels.SelectorFromSet(labels.Set{api.LabelApp: "gosip"})
	tests := []struct {
		name   string
		target Target
		sel    labels.Selector
		sites  []string
		want   string
	}{
		{"app", Target{App: "gosip"}, app, nil,
			`no running pods of app "gosip" in namespace "p2p" (label kubectl-stage.io/app=gosip): check the app name and -n; the stage webhook sets kubectl-stage.io/app on the pods it admits (opt in with kubectl-stage.io/inject=enabled, then deploy or kubectl stage rollout the app)`},
		{"at sites", Target{App: "gosip"}, app, []string{"lima", "oslo"},
			`no running pods of app "gosip" in namespace "p2p" at sites lima, oslo (label kubectl-stage.io/app=gosip): see where its pods run with kubectl stage sites -o wide`},
		{"workload", Target{Kind: "Deployment", Name: "web"}, labels.SelectorFromSet(labels.Set{"app": "web"}), nil,
			`no running pods of deployment/web in namespace "p2p" (selector app=web): wait for its pods to start, or check them with kubectl get pods -l 'app=web'`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.target.NoPodsError("p2p", tt.sel, tt.sites).Error(); got != tt.want {
				t.Errorf("got\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}
