package mutate

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

var benchSizes = []int{100, 10_000, 100_000}

// benchPods are n peer pods at 30 sites, one in ten not ready, as the
// webhook's cache holds them.
func benchPods(n int) ([]corev1.Pod, map[string]string) {
	pods := make([]corev1.Pod, n)
	siteOf := map[string]string{}
	for i := range pods {
		node := fmt.Sprintf("node-%d", i)
		siteOf[node] = fmt.Sprintf("site-%d", i%30)
		ready := corev1.ConditionTrue
		if i%10 == 0 {
			ready = corev1.ConditionFalse
		}
		pods[i] = corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("gossip-%d", i), Namespace: "p2p", Labels: map[string]string{api.LabelApp: "gossip"}},
			Spec:       corev1.PodSpec{NodeName: node, HostNetwork: true},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, HostIP: fmt.Sprintf("10.%d.%d.%d", i/62500, i/250%250, i%250+1),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}},
		}
	}
	return pods, siteOf
}

func benchIndex(pods []corev1.Pod, siteOf map[string]string) *Index {
	x := NewIndex()
	for node, site := range siteOf {
		x.SetNode(node, site)
	}
	for i := range pods {
		p := &pods[i]
		x.SetPod(p.Namespace, p.Labels[api.LabelApp], Peer{Name: p.Name, Node: p.Spec.NodeName, HostIP: p.Status.HostIP,
			Ready: p.Status.Conditions[0].Status == corev1.ConditionTrue, HostNetwork: p.Spec.HostNetwork})
	}
	return x
}

// BenchmarkSeeds compares the choice of a pod's seeds: old, as before the
// index (list every pod of the app from the cache, which copies them, make
// peers, sort by name, pick: scanSeeds below is that code, kept only as
// this baseline), and new (read the index, pick).
func BenchmarkSeeds(b *testing.B) {
	cfg := config{seeds: defaultSeeds, port: 30303}
	for _, n := range benchSizes {
		pods, siteOf := benchPods(n)
		b.Run(fmt.Sprintf("old/peers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if len(scanSeeds(pods, siteOf, fmt.Sprintf("gossip-new-%d", i), "", cfg)) != defaultSeeds {
					b.Fatal("too few seeds")
				}
			}
		})
		x := benchIndex(pods, siteOf)
		b.Run(fmt.Sprintf("new/peers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				var seeds []Seed
				_ = x.Peers("p2p", "gossip", func(r *ReadyPeers) {
					seeds = SeedsFor(r, SeedQuery{Key: fmt.Sprintf("gossip-new-%d", i), Port: cfg.port, N: cfg.seeds})
				})
				if len(seeds) != defaultSeeds {
					b.Fatal("too few seeds")
				}
			}
		})
	}
}

// BenchmarkMutate is the whole mutation of a one-per-site pod over the index.
func BenchmarkMutate(b *testing.B) {
	for _, n := range benchSizes {
		pods, siteOf := benchPods(n)
		x := benchIndex(pods, siteOf)
		p := pod(annotate(api.AnnotationPort, "30303"), annotate(api.AnnotationPlacement, PlacementOnePerSite))
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := Mutate(p, nil, x, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// scanSeeds is the choice of seeds before the index (webhook/view.go's
// cacheView.Peers, then chooseSeeds), for BenchmarkSeeds only.
func scanSeeds(cached []corev1.Pod, siteOf map[string]string, self, ownSite string, cfg config) []string {
	list := slices.Clone(cached) // the cache's List copies each pod into the list
	peers := make([]Peer, 0, len(list))
	for i := range list {
		p := &list[i]
		if p.DeletionTimestamp != nil {
			continue
		}
		ready := p.Status.Phase == corev1.PodRunning && p.Status.Conditions[0].Status == corev1.ConditionTrue
		peers = append(peers, Peer{Name: p.Name, Site: siteOf[p.Spec.NodeName], HostIP: p.Status.HostIP, Ready: ready, HostNetwork: p.Spec.HostNetwork})
	}
	slices.SortFunc(peers, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	bySite := map[string][]string{}
	listed := map[string]bool{}
	var sites []string
	for _, p := range peers {
		if !p.Ready || p.HostIP == "" || p.Name == self || !(p.HostNetwork || (cfg.port != 0 && slices.Contains(p.HostPorts, int32(cfg.port)))) {
			continue
		}
		addr := address(p.HostIP, cfg.port)
		if listed[addr] {
			continue
		}
		listed[addr] = true
		if _, seen := bySite[p.Site]; !seen {
			sites = append(sites, p.Site)
		}
		bySite[p.Site] = append(bySite[p.Site], addr)
	}
	slices.SortFunc(sites, func(a, b string) int {
		if (a == ownSite) != (b == ownSite) {
			if a == ownSite {
				return 1
			}
			return -1
		}
		return strings.Compare(a, b)
	})
	var seeds []string
	for round := 0; len(seeds) < cfg.seeds; round++ {
		added := false
		for _, s := range sites {
			if round < len(bySite[s]) && len(seeds) < cfg.seeds {
				seeds = append(seeds, bySite[s][round])
				added = true
			}
		}
		if !added {
			break
		}
	}
	return seeds
}
