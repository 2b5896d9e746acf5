package site

import (
	"context"
	"errors"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// MeshNode is the record as the mesh sees it: nothing secret.
func (r NodeRecord) MeshNode() mesh.Node {
	return mesh.Node{Name: r.Name, Site: r.Site, OverlayIP: r.OverlayIP, PublicKey: r.WireGuardPublicKey,
		Endpoint: r.Endpoint, RelayOnly: r.RelayOnly, EnrolledAt: r.EnrolledAt}
}

// ErrNoHubPublicKey means the configuration predates the mesh.
var ErrNoHubPublicKey = errors.New("the staging configuration has no hub public key (it was written before the mesh existed): re-run `kubectl stage init` with the flags it was initialized with; it keeps the PKI and adds the key")

// MeshHub is the hub as the mesh sees it; only a WireGuard overlay has one.
func (c *Config) MeshHub() (mesh.Hub, error) {
	if c.VPN != vpn.WireGuard {
		return mesh.Hub{}, errors.New("the overlay uses " + string(c.VPN) + ", a star in which every path goes through the hub: only a WireGuard overlay is a mesh")
	}
	if c.HubPublicKey == "" {
		return mesh.Hub{}, ErrNoHubPublicKey
	}
	network, err := c.Network()
	if err != nil {
		return mesh.Hub{}, err
	}
	return mesh.Hub{PublicKey: c.HubPublicKey, Endpoint: c.HubEndpoint, Prefix: network.Prefix, OverlayIP: network.Hub}, nil
}

// DecodeObserved reads the hub's observed endpoints (node name to IP:PORT).
func DecodeObserved(cm *corev1.ConfigMap) map[string]string {
	return maps.Clone(cm.Data)
}

// Observed is the hub's observed endpoints; none when the hub's agent has
// published nothing (an OpenVPN overlay, or no agent at the hub).
func (s *Store) Observed(ctx context.Context) (map[string]string, error) {
	cm, err := s.configMaps().Get(ctx, api.ObservedEndpointsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	return DecodeObserved(cm), nil
}

// SaveObserved replaces the hub's observed endpoints (the hub's agent is
// their only writer; a conflict re-reads and writes again).
func (s *Store) SaveObserved(ctx context.Context, observed map[string]string) error {
	return conflict.Retry(ctx, s.configMapName(api.ObservedEndpointsName), func() error {
		cm, err := s.configMaps().Get(ctx, api.ObservedEndpointsName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			cm = &corev1.ConfigMap{ObjectMeta: s.meta(api.ObservedEndpointsName, nil), Data: observed}
			_, err = s.configMaps().Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), api.ObservedEndpointsName, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		cm.Data = observed
		_, err = s.configMaps().Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}
