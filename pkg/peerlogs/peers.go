package peerlogs

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// NoSite is the site shown for a node without the site label.
const NoSite = "<none>"

// defaultContainerAnnotation names a pod's default container, as kubectl
// reads it.
const defaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// Peer is one pod whose log is read.
type Peer struct {
	Namespace string
	Pod       string
	UID       string
	Node      string
	Site      string
	Container string
	// Index numbers the peers in the order they joined the stream; it
	// chooses the colour.
	Index int
}

// Prefix is SITE/NODE/POD.
func (p Peer) Prefix() string { return p.Site + "/" + p.Node + "/" + p.Pod }

// HasLog says whether pod has a container log to read: it is bound to a
// node and its containers have started (Running, or finished).
func HasLog(pod *corev1.Pod) bool {
	if pod.Spec.NodeName == "" || pod.DeletionTimestamp != nil {
		return false
	}
	switch pod.Status.Phase {
	case corev1.PodRunning, corev1.PodSucceeded, corev1.PodFailed:
		return true
	}
	return false
}

// PeerOf is pod as a peer: its node's site from siteOf (node name to site),
// and the container to read: container when set, else the pod's default
// container (kubectl's annotation), else its first. ok is false for a pod
// at none of sites (every site when sites is empty).
func PeerOf(pod *corev1.Pod, siteOf map[string]string, sites []string, container string) (p Peer, ok bool, err error) {
	site := siteOf[pod.Spec.NodeName]
	if site == "" {
		site = NoSite
	}
	if len(sites) > 0 && !slices.Contains(sites, site) {
		return Peer{}, false, nil
	}
	c, err := containerOf(pod, container)
	if err != nil {
		return Peer{}, false, err
	}
	return Peer{Namespace: pod.Namespace, Pod: pod.Name, UID: string(pod.UID), Node: pod.Spec.NodeName, Site: site, Container: c}, true, nil
}

func containerOf(pod *corev1.Pod, want string) (string, error) {
	var names []string
	for _, c := range pod.Spec.Containers {
		names = append(names, c.Name)
	}
	if want == "" {
		want = pod.Annotations[defaultContainerAnnotation]
	}
	switch {
	case want == "" && len(names) > 0:
		return names[0], nil
	case slices.Contains(names, want):
		return want, nil
	}
	return "", fmt.Errorf("pod %s has no container %q (its containers: %s); choose one with -c", pod.Name, want, strings.Join(names, ", "))
}

// Select is the pods with a log, at sites, as peers sorted by site, node
// and pod, numbered in that order.
func Select(pods []*corev1.Pod, siteOf map[string]string, sites []string, container string) ([]Peer, error) {
	var peers []Peer
	for _, pod := range pods {
		if !HasLog(pod) {
			continue
		}
		p, ok, err := PeerOf(pod, siteOf, sites, container)
		if err != nil {
			return nil, err
		}
		if ok {
			peers = append(peers, p)
		}
	}
	slices.SortFunc(peers, func(a, b Peer) int {
		return cmp.Or(cmp.Compare(a.Site, b.Site), cmp.Compare(a.Node, b.Node), cmp.Compare(a.Pod, b.Pod))
	})
	for i := range peers {
		peers[i].Index = i
	}
	return peers, nil
}

// CheckSites fails on a requested site that no node has; known is every
// site of the cluster's nodes.
func CheckSites(sites, known []string) error {
	var unknown []string
	for _, s := range sites {
		if !slices.Contains(known, s) {
			unknown = append(unknown, s)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	have := "no node has a site label yet (kubectl stage join SITE)"
	if len(known) > 0 {
		have = "the sites are " + strings.Join(known, ", ") + " (kubectl stage sites)"
	}
	return fmt.Errorf("unknown site %s: %s", quoteAll(unknown), have)
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
