package dashboard

import (
	"bufio"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
)

func pod(ns, name, app, node string, ready bool, mods ...func(*corev1.Pod)) *corev1.Pod {
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{api.LabelApp: app}},
		Spec:       corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "c", Image: app + ":v1"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, HostIP: "10.23.0.2", Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func TestAppsFrom(t *testing.T) {
	siteOf := map[string]string{"tokyo-1": "tokyo", "osaka-1": "osaka"}
	pods := []*corev1.Pod{
		pod("p2p", "gossip-1", "gossip", "tokyo-1", true),
		pod("p2p", "gossip-0", "gossip", "tokyo-1", false),
		pod("p2p", "gossip-2", "gossip", "osaka-1", true),
		pod("p2p", "gossip-3", "gossip", "", false, func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodPending} }),
		pod("p2p", "gone", "gossip", "osaka-1", true, func(p *corev1.Pod) { p.DeletionTimestamp = &metav1.Time{} }),
		pod("dht", "dht-0", "dht", "osaka-1", true),
		pod("p2p", "web", "", "osaka-1", true),
	}
	got := AppsFrom(pods, siteOf)
	want := []App{
		{Namespace: "dht", Name: "dht", Sites: []AppSite{{Site: "osaka", Peers: []Peer{{Pod: "dht-0", Node: "osaka-1", HostIP: "10.23.0.2", Phase: "Running", Ready: true, Image: "dht:v1"}}}}},
		{Namespace: "p2p", Name: "gossip", Sites: []AppSite{
			{Site: "", Peers: []Peer{{Pod: "gossip-3", Phase: "Pending", Image: "gossip:v1"}}},
			{Site: "osaka", Peers: []Peer{{Pod: "gossip-2", Node: "osaka-1", HostIP: "10.23.0.2", Phase: "Running", Ready: true, Image: "gossip:v1"}}},
			{Site: "tokyo", Peers: []Peer{
				{Pod: "gossip-0", Node: "tokyo-1", HostIP: "10.23.0.2", Phase: "Running", Image: "gossip:v1"},
				{Pod: "gossip-1", Node: "tokyo-1", HostIP: "10.23.0.2", Phase: "Running", Ready: true, Image: "gossip:v1"},
			}},
		}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AppsFrom:\n%+v\nwant\n%+v", got, want)
	}
}

func TestWriteSVG(t *testing.T) {
	peers := []peergraph.Peer{
		{Pod: "g-0", Site: "tokyo", Node: "tokyo-1", IPs: []string{"10.23.0.2"}, Port: 7946},
		{Pod: "g-1", Site: "osaka", Node: "osaka-1", IPs: []string{"10.23.0.3"}, Port: 7946},
		{Pod: "g-2", Site: "osaka", Node: "osaka-2", IPs: []string{"10.23.0.4"}, Port: 7946},
	}
	g := peergraph.Build("p2p", "gossip", peers, map[string]peergraph.View{
		"g-0": {Entries: []peergraph.Entry{{Addr: "10.23.0.3:7946", Live: true}}},
		"g-1": {Entries: []peergraph.Entry{{Addr: "10.23.0.4:7946", Live: true}, {Addr: "10.23.0.2:7946", Live: true}}},
		"g-2": {Err: errors.New("timeout <5s>")},
	})
	var b strings.Builder
	if err := WriteSVG(&b, g); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	for _, want := range []struct {
		what string
		n    int
	}{
		{`<g class="site">`, 2},
		{`<line class="link cross"`, 2},
		{`<line class="link"`, 1},
		{`<g class="peer">`, 2},
		{`<g class="peer down">`, 1},
		{`<text x="20" y="20"`, 0}, // site names sit inside their boxes
		{`class="site-name">osaka</text>`, 1},
		{`class="site-name">tokyo</text>`, 1},
		{`g-2: no answer: timeout &lt;5s&gt;`, 1},
	} {
		if got := strings.Count(svg, want.what); got != want.n {
			t.Errorf("%q appears %d times, want %d:\n%s", want.what, got, want.n, svg)
		}
	}
	// Two sites side by side, two peers high.
	if !strings.HasPrefix(svg, `<svg xmlns="http://www.w3.org/2000/svg" width="480" height="204" viewBox="0 0 480 204"`) {
		t.Errorf("size: %s", strings.SplitN(svg, "\n", 2)[0])
	}
}

// The page only answers for the address it serves, and pushes each new
// state to every open event stream.
func TestHandler(t *testing.T) {
	s := &Server{Hosts: []string{"127.0.0.1"}, changed: make(chan struct{}), graphs: map[string]*v1alpha1.PeerGraph{}}
	s.publish([]byte(`{"n":1}`))
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		path, host string
		code       int
		body       string
	}{
		{"/api/state", "", 200, `{"n":1}`},
		{"/api/state", "evil.example:80", 403, "host \"evil.example:80\" is not served here: open the address kubectl stage dashboard printed\n"},
		{"/graph/p2p/gossip.svg", "", 404, "no graph of that app yet: does it run, and declare kubectl-stage.io/peers-endpoint?\n"},
		{"/app.js", "", 200, ""},
		{"/", "", 200, ""},
	} {
		req, _ := http.NewRequest("GET", srv.URL+tt.path, nil)
		if tt.host != "" {
			req.Host = tt.host
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body strings.Builder
		_, _ = bufio.NewReader(resp.Body).WriteTo(&body)
		_ = resp.Body.Close()
		if resp.StatusCode != tt.code || (tt.body != "" && body.String() != tt.body) {
			t.Errorf("GET %s (host %q) = %d %q, want %d %q", tt.path, tt.host, resp.StatusCode, body.String(), tt.code, tt.body)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/api/events", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	events := bufio.NewReader(resp.Body)
	next := func() string {
		for {
			line, err := events.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				return strings.TrimSpace(data)
			}
		}
	}
	if got := next(); got != `{"n":1}` {
		t.Errorf("first event %q", got)
	}
	s.publish([]byte(`{"n":1}`)) // the same state: no event
	s.publish([]byte(`{"n":2}`))
	if got := next(); got != `{"n":2}` {
		t.Errorf("second event %q", got)
	}
}
