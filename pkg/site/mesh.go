package site

import (
	"errors"

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
