package webhook

import (
	"context"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/mutate"
)

// CacheSource reads nodes, namespaces and peer pods from the manager's
// informer cache. Objects are read without deep copies: the mutation only
// reads them.
type CacheSource struct {
	Reader client.Reader
}

// NamespaceLabels implements ViewSource.
func (s CacheSource) NamespaceLabels(ctx context.Context, name string) (map[string]string, error) {
	ns := &corev1.Namespace{}
	if err := s.Reader.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
		return nil, err
	}
	return ns.Labels, nil
}

// View implements ViewSource.
func (s CacheSource) View(ctx context.Context) (mutate.View, error) {
	nodes := &corev1.NodeList{}
	if err := s.Reader.List(ctx, nodes, client.HasLabels{api.LabelSite}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, err
	}
	v := &cacheView{ctx: ctx, reader: s.Reader, siteOfNode: make(map[string]string, len(nodes.Items))}
	for i := range nodes.Items {
		site := nodes.Items[i].Labels[api.LabelSite]
		v.siteOfNode[nodes.Items[i].Name] = site
		if !slices.Contains(v.sites, site) {
			v.sites = append(v.sites, site)
		}
	}
	slices.Sort(v.sites)
	return v, nil
}

type cacheView struct {
	ctx        context.Context
	reader     client.Reader
	sites      []string
	siteOfNode map[string]string
}

func (v *cacheView) Sites() []string { return v.sites }

func (v *cacheView) Peers(namespace, app string) []mutate.Peer {
	pods := &corev1.PodList{}
	if err := v.reader.List(v.ctx, pods, client.InNamespace(namespace), client.MatchingLabels{api.LabelApp: app}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	peers := make([]mutate.Peer, 0, len(pods.Items))
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		peers = append(peers, mutate.Peer{
			Name: p.Name, Site: v.siteOfNode[p.Spec.NodeName], HostIP: p.Status.HostIP, Ready: podReady(p),
			HostNetwork: p.Spec.HostNetwork, HostPorts: hostPorts(p),
		})
	}
	slices.SortFunc(peers, func(a, b mutate.Peer) int { return strings.Compare(a.Name, b.Name) })
	return peers
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
