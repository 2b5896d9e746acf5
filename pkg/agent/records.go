package agent

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// Records is the agent's one watch of kubectl-stage's ConfigMaps (the
// staging configuration, the node records, the network conditions), which
// every loop of the process follows: one list and one watch on the API
// server per agent, however many loops it runs.
type Records struct {
	factory  informers.SharedInformerFactory
	informer cache.SharedIndexInformer
	lister   corelisters.ConfigMapNamespaceLister
}

// NewRecords prepares the watch; Start starts it.
func NewRecords(client kubernetes.Interface, resync time.Duration) *Records {
	factory := informers.NewSharedInformerFactoryWithOptions(client, resync,
		informers.WithNamespace(api.SystemNamespace),
		// The configuration and the records: ConfigMaps hold nothing secret,
		// and the agent reads no Secret.
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = api.LabelManagedBy + "=" + api.LabelManagedByValue }))
	configMaps := factory.Core().V1().ConfigMaps()
	return &Records{factory: factory, informer: configMaps.Informer(), lister: configMaps.Lister().ConfigMaps(api.SystemNamespace)}
}

// Start runs the watch until ctx ends; Shutdown waits for it to stop.
func (r *Records) Start(ctx context.Context) { r.factory.Start(ctx.Done()) }

// Shutdown waits for the watch, stopped by Start's ctx, to end.
func (r *Records) Shutdown() { r.factory.Shutdown() }

// Follow calls reconcile with the synced cache on every change, every
// resync and every tick of also (nil: none), until ctx ends. Loops come and
// go (the network conditions' loop hands over to an agent pod and back)
// while the watch stays.
func (r *Records) Follow(ctx context.Context, resync time.Duration, also <-chan time.Time, reconcile func(corelisters.ConfigMapNamespaceLister)) error {
	changed := make(chan struct{}, 1)
	poke := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	registration, err := r.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	})
	if err != nil {
		return err
	}
	defer func() { _ = r.informer.RemoveEventHandler(registration) }()
	// Never reconcile from an empty cache: it would remove every peer.
	if !cache.WaitForCacheSync(ctx.Done(), registration.HasSynced) {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("the informer did not sync: %w", context.Cause(ctx))
	}
	ticker := time.NewTicker(resync)
	defer ticker.Stop()
	poke()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-ticker.C:
		case <-also:
		}
		reconcile(r.lister)
	}
}
