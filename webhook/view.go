package webhook

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

// IndexSource is the mutation's view: a mutate.Index that the manager's
// node and pod informers keep current through event handlers, so that an
// admission reads a few peers instead of listing and sorting all of them.
// Namespaces are read from the cache.
type IndexSource struct {
	Reader client.Reader
	Index  *mutate.Index
	// nodesSynced and podsSynced report whether the index has had every
	// node and peer pod the informers listed at start.
	nodesSynced, podsSynced func() bool
}

// NewIndexSource registers the index's event handlers on c's node and pod
// informers (they start with the cache).
func NewIndexSource(ctx context.Context, c cache.Cache) (*IndexSource, error) {
	s := &IndexSource{Reader: c, Index: mutate.NewIndex()}
	for _, h := range []struct {
		obj     client.Object
		handler toolscache.ResourceEventHandler
		synced  *func() bool
	}{
		{&corev1.Node{}, nodeHandler(s.Index), &s.nodesSynced},
		{&corev1.Pod{}, podHandler(s.Index), &s.podsSynced},
	} {
		informer, err := c.GetInformer(ctx, h.obj)
		if err != nil {
			return nil, fmt.Errorf("informer for %T: %w", h.obj, err)
		}
		reg, err := informer.AddEventHandler(h.handler)
		if err != nil {
			return nil, fmt.Errorf("event handler for %T: %w", h.obj, err)
		}
		*h.synced = reg.HasSynced
	}
	return s, nil
}

// NamespaceLabels implements ViewSource.
func (s *IndexSource) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns := &corev1.Namespace{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// errNotSynced is the view's answer while the webhook starts.
var errNotSynced = errors.New("the webhook has not yet read every peer (its pod cache is still syncing)")

// View implements ViewSource: an error until the nodes are all read, and
// peers that are an error until the pods are.
func (s *IndexSource) View(context.Context) (mutate.View, error) {
	if !s.nodesSynced() {
		return nil, errors.New("the webhook has not yet read the nodes' sites (its node cache is still syncing)")
	}
	return syncedView{s}, nil
}

type syncedView struct{ s *IndexSource }

func (v syncedView) Sites() []string { return v.s.Index.Sites() }

func (v syncedView) Peers(namespace, app string, read func(*mutate.ReadyPeers)) error {
	if !v.s.podsSynced() {
		return errNotSynced
	}
	return v.s.Index.Peers(namespace, app, read)
}

// nodeHandler keeps the nodes' sites in the index.
func nodeHandler(x *mutate.Index) toolscache.ResourceEventHandler {
	set := func(obj any) {
		if n, ok := obj.(*corev1.Node); ok {
			x.SetNode(n.Name, n.Labels[api.LabelSite])
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if _, name, ok := deleted(obj); ok {
				x.DeleteNode(name)
			}
		},
	}
}

// podHandler keeps the peer pods (those the webhook labelled with their
// app) in the index; a pod being deleted is no peer.
func podHandler(x *mutate.Index) toolscache.ResourceEventHandler {
	set := func(obj any) {
		p, ok := obj.(*corev1.Pod)
		if !ok {
			return
		}
		if p.DeletionTimestamp != nil || p.Labels[api.LabelApp] == "" {
			x.DeletePod(p.Namespace, p.Name)
			return
		}
		x.SetPod(p.Namespace, p.Labels[api.LabelApp], peerOf(p))
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    set,
		UpdateFunc: func(_, obj any) { set(obj) },
		DeleteFunc: func(obj any) {
			if namespace, name, ok := deleted(obj); ok {
				x.DeletePod(namespace, name)
			}
		},
	}
}

// deleted names the object of a delete event, which is the object or, when
// the watch missed the deletion, a tombstone holding its last known state
// or at least its key.
func deleted(obj any) (namespace, name string, ok bool) {
	if tomb, isTomb := obj.(toolscache.DeletedFinalStateUnknown); isTomb {
		if o, isObject := tomb.Obj.(client.Object); isObject {
			return o.GetNamespace(), o.GetName(), true
		}
		namespace, name, err := toolscache.SplitMetaNamespaceKey(tomb.Key)
		return namespace, name, err == nil
	}
	o, isObject := obj.(client.Object)
	if !isObject {
		return "", "", false
	}
	return o.GetNamespace(), o.GetName(), true
}

func peerOf(p *corev1.Pod) mutate.Peer {
	// The webhook validated the annotation when it admitted the pod; a pod
	// it did not admit advertises no port.
	port, err := strconv.Atoi(p.Annotations[api.AnnotationPort])
	if err != nil || port < 1 || port > 65535 {
		port = 0
	}
	return mutate.Peer{
		Name: p.Name, Node: p.Spec.NodeName, HostIP: p.Status.HostIP, Ready: podReady(p),
		HostNetwork: p.Spec.HostNetwork, HostPorts: hostPorts(p), Port: port,
	}
}

func hostPorts(p *corev1.Pod) []int32 {
	var ports []int32
	for _, c := range p.Spec.Containers {
		for _, port := range c.Ports {
			if port.HostPort != 0 {
				ports = append(ports, port.HostPort)
			}
		}
	}
	return ports
}

func podReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
