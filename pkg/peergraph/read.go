package peergraph

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// Reader reads an app's graph from the cluster: its pods, their nodes'
// sites, and each peer's view through the API server's pod proxy (no
// network path from here to the peers is needed).
type Reader struct {
	Client kubernetes.Interface
	// Timeout bounds the reading of one view; Parallel the views read at once.
	Timeout  time.Duration
	Parallel int
}

// Read returns the graph of app's running peers in namespace (pods with
// the label the stage webhook sets).
func (r Reader) Read(ctx context.Context, namespace, app string) (*v1alpha1.PeerGraph, error) {
	// The missing permission named before anything is read, as join does.
	if err := access.CheckRead(ctx, r.Client, fmt.Sprintf("read the peers' views of app %q in namespace %s", app, namespace), []access.Rule{
		{Verb: "list", Resource: "nodes"},
		{Verb: "list", Resource: "pods", Namespace: namespace},
		ProxyRule(namespace),
	}); err != nil {
		return nil, err
	}
	selector := labels.Set{api.LabelApp: app}.String()
	pods, err := r.Client.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	nodes, err := r.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	siteOf := map[string]string{}
	for _, n := range nodes.Items {
		siteOf[n.Name] = n.Labels[api.LabelSite]
	}
	var peers []Peer
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		peers = append(peers, PeerOf(&p, siteOf[p.Spec.NodeName]))
	}
	if len(peers) == 0 {
		return nil, fmt.Errorf("no running pods of app %q in namespace %q (label %s): check the app's name and namespace (-n)", app, namespace, selector)
	}
	views, err := r.Views(ctx, namespace, peers)
	if err != nil {
		return nil, err
	}
	return Build(namespace, app, peers, views), nil
}

// ProxyRule is the permission reading the peers' views in namespace takes:
// the API server's pod proxy.
func ProxyRule(namespace string) access.Rule {
	return access.Rule{Verb: "get", Resource: "pods", Subresource: "proxy", Namespace: namespace}
}

// PeerOf is a running pod of the app as a peer at site.
func PeerOf(p *corev1.Pod, site string) Peer {
	peer := Peer{Pod: p.Name, Node: p.Spec.NodeName, Site: site, Endpoint: p.Annotations[api.AnnotationPeersEndpoint]}
	for _, ip := range append([]string{p.Status.HostIP}, podIPs(p)...) {
		if ip != "" {
			peer.IPs = append(peer.IPs, ip)
		}
	}
	peer.Port, _ = strconv.Atoi(p.Annotations[api.AnnotationPort])
	return peer
}

// Views reads the views of peers through the API server's pod proxy, by
// pod; a peer that declares no endpoint, or a bad one, gets the reason.
func (r Reader) Views(ctx context.Context, namespace string, peers []Peer) (map[string]View, error) {
	views := map[string]View{}
	endpoints := map[string]Endpoint{}
	for _, peer := range peers {
		if peer.Endpoint == "" {
			views[peer.Pod] = View{Err: fmt.Errorf("declares no %s annotation", api.AnnotationPeersEndpoint)}
			continue
		}
		endpoint, err := ParseEndpoint(peer.Endpoint)
		if err != nil {
			views[peer.Pod] = View{Err: err}
			continue
		}
		endpoints[peer.Pod] = endpoint
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, max(r.Parallel, 1))
	for pod, endpoint := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			slots <- struct{}{}
			defer func() { <-slots }()
			view := r.readView(ctx, namespace, pod, endpoint)
			mu.Lock()
			defer mu.Unlock()
			views[pod] = view
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return views, nil
}

func (r Reader) readView(ctx context.Context, namespace, pod string, e Endpoint) View {
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.Timeout)
		defer cancel()
	}
	body, err := r.Client.CoreV1().Pods(namespace).ProxyGet("http", pod, e.Port, e.Path, nil).DoRaw(ctx)
	if apierrors.IsForbidden(err) {
		// The proxy's answer carries no useful reason: name the permission.
		return View{Err: fmt.Errorf("GET %s%s through the API server: forbidden: this identity may not get pods/proxy in namespace %s (check: kubectl auth can-i get pods --subresource=proxy -n %s); grant it, as the chart's rollout controller ClusterRole does", e.Port, e.Path, namespace, namespace)}
	}
	if err != nil {
		return View{Err: fmt.Errorf("GET %s%s through the API server: %w", e.Port, e.Path, err)}
	}
	entries, err := ParseView(body)
	if err != nil {
		return View{Err: fmt.Errorf("GET %s%s: %w", e.Port, e.Path, err)}
	}
	return View{Entries: entries}
}

func podIPs(p *corev1.Pod) []string {
	var ips []string
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	return ips
}
