package dashboard

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/peergraph"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

//go:embed static
var static embed.FS

// Server watches the cluster and serves the page, its state (GET
// /api/state, and pushed as server-sent events at /api/events) and each
// app's graph as SVG (/graph/NAMESPACE/APP.svg). It talks to the API
// server with the user's credentials and nothing else.
type Server struct {
	Client kubernetes.Interface
	// Namespace limits the apps and rollouts shown ("" for all).
	Namespace string
	Graph     peergraph.Reader
	// GraphEvery is how often the peers' views are read again (they change
	// without any Kubernetes event).
	GraphEvery time.Duration
	// Hosts are the Host headers accepted (the address served): a page of
	// another site cannot read the dashboard through DNS rebinding.
	Hosts []string
	Now   func() time.Time

	mu       sync.Mutex
	data     []byte
	changed  chan struct{}
	graphs   map[string]*v1alpha1.PeerGraph
	overview map[string]GraphOverview
}

// Serve watches and serves on l until ctx ends.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	s.changed = make(chan struct{})
	s.graphs, s.overview = map[string]*v1alpha1.PeerGraph{}, map[string]GraphOverview{}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	cluster := informers.NewSharedInformerFactory(s.Client, 0)
	peers := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(s.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = api.LabelApp }))
	workloads := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(s.Namespace))
	records := informers.NewSharedInformerFactoryWithOptions(s.Client, 0, informers.WithNamespace(api.SystemNamespace))
	nodes, pods := cluster.Core().V1().Nodes(), peers.Core().V1().Pods()
	dirty := make(chan struct{}, 1)
	mark := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke(dirty) },
		UpdateFunc: func(any, any) { poke(dirty) },
		DeleteFunc: func(any) { poke(dirty) },
	}
	for _, inf := range []toolscache.SharedIndexInformer{
		nodes.Informer(), pods.Informer(), records.Core().V1().ConfigMaps().Informer(),
		workloads.Apps().V1().Deployments().Informer(), workloads.Apps().V1().StatefulSets().Informer(), workloads.Apps().V1().DaemonSets().Informer(),
	} {
		if _, err := inf.AddEventHandler(mark); err != nil {
			return err
		}
	}
	for _, f := range []informers.SharedInformerFactory{cluster, peers, workloads, records} {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	for _, f := range []informers.SharedInformerFactory{cluster, peers, workloads, records} {
		for typ, ok := range f.WaitForCacheSync(ctx.Done()) {
			if !ok {
				return fmt.Errorf("the watch of %v did not start: can you list it? (kubectl auth can-i list %v)", typ, typ)
			}
		}
	}
	build := func() {
		state := s.build(ctx, nodes.Lister().List, pods.Lister().List, workloads)
		data, err := json.Marshal(state)
		if err != nil {
			return
		}
		s.publish(data)
	}
	build()
	go s.readGraphs(ctx, dirty)

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go func() {
		// Rebuilt at most every 300 ms, however many events arrive.
		for {
			select {
			case <-ctx.Done():
				return
			case <-dirty:
				build()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
			}
		}
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// publish makes data the state every page gets.
func (s *Server) publish(data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if string(data) == string(s.data) {
		return
	}
	s.data = data
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) current() ([]byte, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.data, s.changed
}

// build reads the state: the sites report, the apps from the watched pods,
// the rollouts of the watched workloads, the graphs last read.
func (s *Server) build(ctx context.Context, listNodes func(labels.Selector) ([]*corev1.Node, error), listPods func(labels.Selector) ([]*corev1.Pod, error), workloads informers.SharedInformerFactory) State {
	state := State{Generated: metav1.NewTime(s.Now()), Sites: []v1alpha1.Site{}, Nodes: []v1alpha1.EnrolledNode{}, Rollouts: []v1alpha1.Rollout{}, Problems: []string{}}
	if report, err := site.NewStore(s.Client).BuildReport(ctx, s.Now()); err != nil {
		state.Problems = append(state.Problems, "sites: "+err.Error())
	} else {
		// Empty lists stay lists for the page, never null.
		state.Sites = append(state.Sites, report.Sites.Items...)
		state.Nodes = append(state.Nodes, report.Nodes.Items...)
	}
	siteOf := map[string]string{}
	nodes, err := listNodes(labels.Everything())
	if err != nil {
		state.Problems = append(state.Problems, "nodes: "+err.Error())
	}
	for _, n := range nodes {
		siteOf[n.Name] = n.Labels[api.LabelSite]
	}
	pods, err := listPods(labels.Everything())
	if err != nil {
		state.Problems = append(state.Problems, "pods: "+err.Error())
	}
	state.Apps = AppsFrom(pods, siteOf)
	// The workloads a rollout has touched (sorted below; a cache's list
	// cannot fail).
	var refs []rollout.Ref
	for kind, informer := range map[string]toolscache.SharedIndexInformer{
		rollout.KindDeployment:  workloads.Apps().V1().Deployments().Informer(),
		rollout.KindStatefulSet: workloads.Apps().V1().StatefulSets().Informer(),
		rollout.KindDaemonSet:   workloads.Apps().V1().DaemonSets().Informer(),
	} {
		for _, obj := range informer.GetStore().List() {
			if m, ok := obj.(metav1.Object); ok && m.GetAnnotations()[api.AnnotationRollout] != "" {
				refs = append(refs, rollout.Ref{Kind: kind, Name: m.GetName(), Namespace: m.GetNamespace()})
			}
		}
	}
	slices.SortFunc(refs, func(a, b rollout.Ref) int {
		return strings.Compare(a.Namespace+"/"+a.String(), b.Namespace+"/"+b.String())
	})
	for _, ref := range refs {
		roller, err := rollout.New(ctx, s.Client, ref, io.Discard)
		if err != nil {
			state.Problems = append(state.Problems, fmt.Sprintf("rollout of %s/%s: %v", ref.Namespace, ref, err))
			continue
		}
		res, err := roller.Status(ctx)
		if err != nil {
			state.Problems = append(state.Problems, fmt.Sprintf("rollout of %s/%s: %v", ref.Namespace, ref, err))
			continue
		}
		state.Rollouts = append(state.Rollouts, *res.Object())
	}
	s.mu.Lock()
	state.Graphs = map[string]GraphOverview{}
	for k, v := range s.overview {
		state.Graphs[k] = v
	}
	s.mu.Unlock()
	return state
}

// readGraphs reads every shown app's graph now and every GraphEvery, and
// asks for a rebuild when one changed.
func (s *Server) readGraphs(ctx context.Context, dirty chan struct{}) {
	for {
		data, _ := s.current()
		var state State
		if json.Unmarshal(data, &state) == nil {
			changed := false
			for _, app := range state.Apps {
				key := app.Namespace + "/" + app.Name
				g, err := s.Graph.Read(ctx, app.Namespace, app.Name)
				if err != nil {
					continue
				}
				raw, _ := json.Marshal(g)
				h := fnv.New64a()
				_, _ = h.Write(raw)
				version := fmt.Sprintf("%x", h.Sum64())
				s.mu.Lock()
				if s.overview[key].Version != version {
					s.graphs[key], s.overview[key] = g, GraphOverview{Summary: g.Summary, Version: version}
					changed = true
				}
				s.mu.Unlock()
			}
			if changed {
				poke(dirty)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.GraphEvery):
		}
	}
}

// Handler serves the page, its state and the graphs.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	assets, _ := fs.Sub(static, "static")
	mux.Handle("GET /", http.FileServerFS(assets))
	mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) {
		data, _ := s.current()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(data)
	})
	mux.HandleFunc("GET /api/events", s.events)
	mux.HandleFunc("GET /graph/{namespace}/{file}", func(w http.ResponseWriter, r *http.Request) {
		app, ok := strings.CutSuffix(r.PathValue("file"), ".svg")
		s.mu.Lock()
		g := s.graphs[r.PathValue("namespace")+"/"+app]
		s.mu.Unlock()
		if !ok || g == nil {
			http.Error(w, "no graph of that app yet: does it run, and declare "+api.AnnotationPeersEndpoint+"?", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Cache-Control", "no-store")
		_ = WriteSVG(w, g)
	})
	return s.checkHost(mux)
}

// events pushes the state as server-sent events, whole, at each change.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	keepalive := time.NewTicker(15 * time.Second)
	defer keepalive.Stop()
	for {
		data, changed := s.current()
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return
		}
		flusher.Flush()
	wait:
		select {
		case <-r.Context().Done():
			return
		case <-changed:
		case <-keepalive.C:
			if _, err := io.WriteString(w, ": keepalive\n\n"); err != nil {
				return
			}
			flusher.Flush()
			goto wait
		}
	}
}

// checkHost refuses requests for another host name than the one served.
func (s *Server) checkHost(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if !slices.Contains(s.Hosts, strings.Trim(host, "[]")) {
			http.Error(w, fmt.Sprintf("host %q is not served here: open the address kubectl stage dashboard printed", r.Host), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}
