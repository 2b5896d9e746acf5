package site

import (
	"context"
	"net/netip"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Paths is the overlay's shape as the cluster holds it now: every pair of
// enrolled nodes' path, and the records the node agents refuse.
func (s *Store) Paths(ctx context.Context) (*v1alpha1.NetworkPathList, []mesh.Refusal, error) {
	cfg, err := s.Config(ctx)
	if err != nil {
		return nil, nil, err
	}
	records, err := s.Nodes(ctx)
	if err != nil {
		return nil, nil, err
	}
	addresses, err := s.Allocations(ctx)
	if err != nil {
		return nil, nil, err
	}
	observed, err := s.Observed(ctx)
	if err != nil {
		return nil, nil, err
	}
	return BuildPaths(cfg, records, addresses, observed)
}

// BuildPaths is the overlay's shape from the configuration, the records and
// the hub's observed endpoints: pkg/mesh's decision for a WireGuard overlay;
// every pair relayed for OpenVPN, which has no mesh.
func BuildPaths(cfg *Config, records []NodeRecord, addresses map[netip.Addr]string, observed map[string]string) (*v1alpha1.NetworkPathList, []mesh.Refusal, error) {
	nodes := make([]mesh.Node, 0, len(records))
	for _, r := range records {
		nodes = append(nodes, r.MeshNode())
	}
	list := &v1alpha1.NetworkPathList{Shape: "mesh", Items: []v1alpha1.NetworkPath{}}
	var paths []mesh.Path
	var refused []mesh.Refusal
	if cfg.VPN == vpn.WireGuard {
		hub, err := cfg.MeshHub()
		if err != nil {
			return nil, nil, err
		}
		paths, refused = mesh.Paths(mesh.Cluster{Hub: hub, Nodes: nodes, Addresses: addresses, Observed: observed})
	} else {
		list.Shape = "star"
		for i, a := range nodes {
			for _, b := range nodes[i+1:] {
				if b.Name < a.Name {
					a, b = b, a
				}
				p := mesh.PathBetween(a, b)
				p.Kind, p.Reason = mesh.Relayed, "OpenVPN overlays are a star: every path goes through the hub"
				paths = append(paths, p)
			}
		}
	}
	for _, p := range paths {
		list.Items = append(list.Items, v1alpha1.NetworkPath{
			ObjectMeta: metav1.ObjectMeta{Name: p.A.Name + "." + p.B.Name},
			Spec: v1alpha1.NetworkPathSpec{NodeA: p.A.Name, SiteA: p.A.Site, NodeB: p.B.Name, SiteB: p.B.Site,
				Path: p.Kind, Reason: p.Reason, Since: metav1.NewTime(p.Since)},
		})
	}
	return list, refused, nil
}

// AddSitePaths sets each site's Status.Paths from the node pairs' paths: a
// site pair is direct or relayed when all its node pairs are, mixed when
// they differ.
func AddSitePaths(sites *v1alpha1.SiteList, paths *v1alpha1.NetworkPathList) {
	kinds := map[string]map[string]string{}
	note := func(from, to, kind string) {
		if kinds[from] == nil {
			kinds[from] = map[string]string{}
		}
		if seen, ok := kinds[from][to]; ok && seen != kind {
			kind = v1alpha1.PathMixed
		}
		kinds[from][to] = kind
	}
	for _, p := range paths.Items {
		if p.Spec.SiteA != p.Spec.SiteB {
			note(p.Spec.SiteA, p.Spec.SiteB, p.Spec.Path)
			note(p.Spec.SiteB, p.Spec.SiteA, p.Spec.Path)
		}
	}
	for i := range sites.Items {
		sites.Items[i].Status.Paths = kinds[sites.Items[i].Name]
	}
}
