package harness

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// KwokNodeAnnotation marks the nodes kwok plays the kubelet for.
const KwokNodeAnnotation = "kwok.x-k8s.io/node"

// Node describes a simulated node.
type Node struct {
	Name string
	// Site is the value of the site label (api.LabelSite).
	Site string
	// InternalIP is the node's address, as a kubelet started with
	// --node-ip would report it: the overlay IP in a staging cluster.
	InternalIP string
	// Labels are added to the standard ones.
	Labels map[string]string
}

// AddNode registers a kwok-managed node and waits until it is Ready.
func (cp *ControlPlane) AddNode(ctx context.Context, n Node) (*corev1.Node, error) {
	labels := map[string]string{
		corev1.LabelHostname:   n.Name,
		corev1.LabelOSStable:   "linux",
		corev1.LabelArchStable: "amd64",
		"type":                 "kwok",
	}
	if n.Site != "" {
		// As a kubelet registered by a join bundle labels itself.
		labels[api.LabelSite] = n.Site
		labels[api.LabelZone] = n.Site
	}
	for k, v := range n.Labels {
		labels[k] = v
	}
	capacity := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse("32"),
		corev1.ResourceMemory: resource.MustParse("128Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
	}
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        n.Name,
			Labels:      labels,
			Annotations: map[string]string{KwokNodeAnnotation: "fake", "node.alpha.kubernetes.io/ttl": "0"},
		},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
		},
	}
	if n.InternalIP != "" {
		// With both address types present kwok's node-initialize stage
		// keeps the list as it is, instead of replacing it.
		node.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: n.InternalIP},
			{Type: corev1.NodeHostName, Address: n.Name},
		}
	}
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return nil, fmt.Errorf("creating node %q: %w", n.Name, err)
	}
	var ready *corev1.Node
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		got, err := cp.Client.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		ready = got
		return site.NodeIsReady(got), nil
	})
	if err != nil {
		return nil, fmt.Errorf("node %q did not become Ready (is kwok running?): %w", n.Name, err)
	}
	return ready, nil
}
