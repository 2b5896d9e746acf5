package rollout

import (
	"context"
	"fmt"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// Follow prints the rollout's progress as it changes, as the runner and
// the pods report it, until it completes, fails or is paused.
func (r *Roller) Follow(ctx context.Context) (*Result, error) {
	w, err := r.watch(ctx)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	printed := map[string]SiteProgress{}
	lastPhase, lastRevision := Phase(""), 0
	loc := Locator{NodeSite: map[string]string{}, Placed: map[string]string{}}
	for {
		// Everything comes from the watch caches: no request per event.
		res, err := w.status(r, loc)
		if err != nil {
			return nil, err
		}
		s := res.State
		if s == nil {
			return res, fmt.Errorf("%s has not been rolled out with kubectl stage rollout", r.w.ref())
		}
		if s.Phase != lastPhase || s.Revision != lastRevision {
			fmt.Fprintf(r.Out, "revision %d: %s (%d of %d sites done)\n", s.Revision, s.Phase, len(s.Done), len(s.Desired))
			if s.Cause != "" && s.Revision != lastRevision {
				// An automatic undo replaced the rollout being followed.
				fmt.Fprintf(r.Out, "  %s\n", s.Cause)
				clear(printed)
			}
			lastPhase, lastRevision = s.Phase, s.Revision
		}
		for _, p := range res.Sites {
			if printed[p.Site] != p {
				fmt.Fprintf(r.Out, "  %s\n", p)
				printed[p.Site] = p
			}
		}
		switch s.Phase {
		case PhaseComplete, PhasePaused:
			return res, nil
		case PhaseFailed:
			return res, fmt.Errorf("the rollout of %s to revision %d failed at site %s: %s", r.w.ref(), s.Revision, s.FailedSite, s.Message)
		}
		select {
		case <-w.changed:
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
}

// watcher keeps the app's pods and the nodes in informer caches and wakes
// the rollout whenever one changes.
type watcher struct {
	pods  listersv1.PodLister
	nodes listersv1.NodeLister
	// self caches the workload, whose annotations hold the state.
	self    cache.Store
	changed chan struct{}
	stop    context.CancelFunc
}

func (r *Roller) watch(ctx context.Context) (*watcher, error) {
	selector, err := metav1.LabelSelectorAsSelector(r.w.selector())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &watcher{changed: make(chan struct{}, 1), stop: cancel}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.poke() },
		UpdateFunc: func(any, any) { w.poke() },
		DeleteFunc: func(any) { w.poke() },
	}
	podFactory := informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithNamespace(r.w.ref().Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = selector.String() }))
	podInformer := podFactory.Core().V1().Pods()
	if _, err := podInformer.Informer().AddEventHandler(notify); err != nil {
		cancel()
		return nil, err
	}
	nodeFactory := informers.NewSharedInformerFactory(r.client, 0)
	nodeInformer := nodeFactory.Core().V1().Nodes()
	if _, err := nodeInformer.Informer().AddEventHandler(notify); err != nil {
		cancel()
		return nil, err
	}
	// The workload itself, for its state: pause, resume, undo and progress
	// written by whoever runs the rollout.
	selfFactory := informers.NewSharedInformerFactoryWithOptions(r.client, 0,
		informers.WithNamespace(r.w.ref().Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", r.w.ref().Name).String()
		}))
	self := r.w.informer(selfFactory)
	if _, err := self.AddEventHandler(notify); err != nil {
		cancel()
		return nil, err
	}
	w.pods, w.nodes, w.self = podInformer.Lister(), nodeInformer.Lister(), self.GetStore()
	podFactory.Start(ctx.Done())
	nodeFactory.Start(ctx.Done())
	selfFactory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced, nodeInformer.Informer().HasSynced, self.HasSynced) {
		cancel()
		return nil, fmt.Errorf("watching the pods of %s: %w", r.w.ref(), context.Cause(ctx))
	}
	return w, nil
}

// status is Roller.Status read from the caches.
func (w *watcher) status(r *Roller, loc Locator) (*Result, error) {
	key := r.w.ref().Namespace + "/" + r.w.ref().Name
	obj, exists, err := w.self.GetByKey(key)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, fmt.Errorf("%s was deleted", r.w.ref())
	}
	meta, err := apimeta.Accessor(obj)
	if err != nil {
		return nil, err
	}
	state, _, err := ReadAnnotations(meta.GetAnnotations())
	if err != nil || state == nil {
		return &Result{Ref: r.w.ref(), State: state}, err
	}
	maps.Copy(loc.Placed, state.Placed)
	pods, loc, err := w.podsAndSites(loc)
	if err != nil {
		return nil, err
	}
	return &Result{Ref: r.w.ref(), State: state, Sites: r.summarize(state, pods, loc)}, nil
}

func (w *watcher) poke() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

func (w *watcher) podsAndSites(loc Locator) ([]*corev1.Pod, Locator, error) {
	pods, err := w.pods.List(labels.Everything())
	if err != nil {
		return nil, loc, err
	}
	nodes, err := w.nodes.List(labels.Everything())
	if err != nil {
		return nil, loc, err
	}
	// Rebuilt, not added to: a node that left must not keep its site.
	clear(loc.NodeSite)
	for _, n := range nodes {
		loc.NodeSite[n.Name] = n.Labels[api.LabelSite]
	}
	return pods, loc, nil
}
