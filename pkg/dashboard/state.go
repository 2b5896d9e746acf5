// Package dashboard is `kubectl stage dashboard`: a local web page that
// shows the staging cluster live. The state it shows is built by pure
// functions from what the informers hold (table-tested); the server only
// watches, rebuilds and pushes it to the page.
package dashboard

import (
	"cmp"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// State is what the page shows, pushed whole on every change.
type State struct {
	Generated metav1.Time              `json:"generated"`
	Sites     []v1alpha1.Site          `json:"sites"`
	Nodes     []v1alpha1.EnrolledNode  `json:"nodes"`
	Apps      []App                    `json:"apps"`
	Rollouts  []v1alpha1.Rollout       `json:"rollouts"`
	Graphs    map[string]GraphOverview `json:"graphs"` // key: NAMESPACE/APP
	// Problems are the parts that could not be read, and why.
	Problems []string `json:"problems"`
}

// App is an app's peers, by site.
type App struct {
	Namespace string    `json:"namespace"`
	Name      string    `json:"name"`
	Sites     []AppSite `json:"sites"`
}

// AppSite is an app's peers at one site ("" when not scheduled yet).
type AppSite struct {
	Site  string `json:"site"`
	Peers []Peer `json:"peers"`
}

// Peer is one pod of an app.
type Peer struct {
	Pod    string `json:"pod"`
	Node   string `json:"node"`
	HostIP string `json:"hostIP"`
	Phase  string `json:"phase"`
	Ready  bool   `json:"ready"`
	Image  string `json:"image"`
}

// GraphOverview is an app's graph summary and a version that changes when
// the graph does, so that the page reloads its picture only then.
type GraphOverview struct {
	Summary v1alpha1.GraphSummary `json:"summary"`
	Version string                `json:"version"`
}

// AppsFrom groups the peer pods (those with the app label the webhook
// sets) by namespace and app, then site (their node's), each sorted.
func AppsFrom(pods []*corev1.Pod, siteOf map[string]string) []App {
	type key struct{ namespace, app string }
	bySite := map[key]map[string][]Peer{}
	for _, p := range pods {
		name := p.Labels[api.LabelApp]
		if name == "" || p.DeletionTimestamp != nil {
			continue
		}
		k := key{p.Namespace, name}
		if bySite[k] == nil {
			bySite[k] = map[string][]Peer{}
		}
		site := siteOf[p.Spec.NodeName]
		image := ""
		if len(p.Spec.Containers) > 0 {
			image = p.Spec.Containers[0].Image
		}
		bySite[k][site] = append(bySite[k][site], Peer{Pod: p.Name, Node: p.Spec.NodeName, HostIP: p.Status.HostIP, Phase: string(p.Status.Phase), Ready: ready(p), Image: image})
	}
	apps := []App{}
	for k, sites := range bySite {
		app := App{Namespace: k.namespace, Name: k.app}
		for site, peers := range sites {
			slices.SortFunc(peers, func(a, b Peer) int { return cmp.Compare(a.Pod, b.Pod) })
			app.Sites = append(app.Sites, AppSite{Site: site, Peers: peers})
		}
		slices.SortFunc(app.Sites, func(a, b AppSite) int { return cmp.Compare(a.Site, b.Site) })
		apps = append(apps, app)
	}
	slices.SortFunc(apps, func(a, b App) int { return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name)) })
	return apps
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
