// Package site keeps kubectl-stage's state in the cluster: the staging
// configuration, the overlay address table, and one record per site and per
// enrolled node. Every read-modify-write is conditioned on the object's
// resourceVersion and retried on conflict, so concurrent joins never hand
// out an address twice and never lose an update.
package site

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Config is the staging configuration written by `kubectl stage init`.
type Config struct {
	// OverlayCIDR is the VPN overlay, e.g. 10.23.0.0/16.
	OverlayCIDR string `json:"overlayCIDR"`
	// HubEndpoint is host:port where nodes reach the VPN hub.
	HubEndpoint string `json:"hubEndpoint"`
	// VPN is the backend: openvpn or wireguard.
	VPN vpn.Backend `json:"vpn"`
	// APIServerEndpoint is host:port of the API server over the overlay;
	// `kubeadm join` dials it from the sites.
	APIServerEndpoint string `json:"apiServerEndpoint"`
	// PodCIDR and ServiceCIDR are the cluster's ranges, which the overlay
	// must not overlap.
	PodCIDR     string `json:"podCIDR,omitempty"`
	ServiceCIDR string `json:"serviceCIDR,omitempty"`
	// TokenTTL is the default lifetime of join tokens.
	TokenTTL Duration `json:"tokenTTL"`
	// CredentialValidity is the lifetime of node VPN certificates.
	CredentialValidity Duration  `json:"credentialValidity"`
	CreatedAt          time.Time `json:"createdAt"`
}

// Pool is the overlay address pool.
func (c *Config) Pool() (*ipam.Pool, error) { return ipam.NewPool(c.OverlayCIDR) }

// Network is the overlay as the VPN configurations see it.
func (c *Config) Network() (vpn.Network, error) {
	pool, err := c.Pool()
	if err != nil {
		return vpn.Network{}, err
	}
	return vpn.Network{Prefix: pool.Prefix(), Hub: pool.Hub(), Endpoint: c.HubEndpoint}, nil
}

// Duration is a time.Duration written as "24h0m0s".
type Duration struct{ time.Duration }

func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// NodeRecord is an enrolled node. It holds no secret.
type NodeRecord struct {
	Name      string      `json:"name"`
	Site      string      `json:"site"`
	OverlayIP netip.Addr  `json:"overlayIP"`
	VPN       vpn.Backend `json:"vpn"`
	// CertificateSerial (OpenVPN) is what the CRL names on leave.
	CertificateSerial string `json:"certificateSerial,omitempty"`
	// WireGuardPublicKey is the node's peer key on the hub.
	WireGuardPublicKey string    `json:"wireGuardPublicKey,omitempty"`
	CredentialExpires  time.Time `json:"credentialExpires"`
	TokenID            string    `json:"tokenID"`
	TokenExpires       time.Time `json:"tokenExpires"`
	EnrolledAt         time.Time `json:"enrolledAt"`
}

// SiteRecord is a site; it exists from the first join there.
type SiteRecord struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}
