// Package site keeps kubectl-stage's state in the cluster: the staging
// configuration, the overlay address table, and one record per site and per
// enrolled node. Every read-modify-write is conditioned on the object's
// resourceVersion and retried on conflict, so concurrent joins never hand
// out an address twice and never lose an update.
package site

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Config is the staging configuration written by `kubectl stage init`.
type Config struct {
	// OverlayCIDR is the VPN overlay, e.g. 10.23.0.0/16.
	OverlayCIDR string `json:"overlayCIDR"`
	// HubEndpoint is host:port where nodes reach the VPN hub.
	HubEndpoint string `json:"hubEndpoint"`
	// HubPublicKey is the hub's WireGuard public key (not secret), which
	// the node agents read to keep the hub among their peers.
	HubPublicKey string `json:"hubPublicKey,omitempty"`
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

// Validate checks every field as init does: the values end up in VPN
// configurations and in the join bundle that runs as root at every site, so
// whoever can edit the ConfigMap must not be able to smuggle anything in.
// Store.Config calls it on every read.
func (c *Config) Validate() error {
	var errs []error
	if _, err := c.Pool(); err != nil {
		errs = append(errs, fmt.Errorf("overlayCIDR %q: %w", c.OverlayCIDR, err))
	}
	if _, err := vpn.ParseBackend(string(c.VPN)); err != nil {
		errs = append(errs, fmt.Errorf("vpn: %w", err))
	}
	if _, _, err := vpn.SplitEndpoint(c.HubEndpoint); err != nil {
		errs = append(errs, fmt.Errorf("hubEndpoint: %w", err))
	}
	if _, _, err := vpn.SplitEndpoint(c.APIServerEndpoint); err != nil {
		errs = append(errs, fmt.Errorf("apiServerEndpoint: %w", err))
	}
	for field, cidr := range map[string]string{"podCIDR": c.PodCIDR, "serviceCIDR": c.ServiceCIDR} {
		if cidr == "" {
			continue
		}
		for _, part := range strings.Split(cidr, ",") {
			if _, err := netip.ParsePrefix(strings.TrimSpace(part)); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", field, cidr, err))
			}
		}
	}
	if c.HubPublicKey != "" {
		if err := vpn.ValidateWireGuardKey(c.HubPublicKey); err != nil {
			errs = append(errs, fmt.Errorf("hubPublicKey: %w", err))
		}
	}
	if c.TokenTTL.Duration <= 0 {
		errs = append(errs, fmt.Errorf("tokenTTL %s: must be positive", c.TokenTTL))
	}
	if c.CredentialValidity.Duration <= 0 {
		errs = append(errs, fmt.Errorf("credentialValidity %s: must be positive", c.CredentialValidity))
	}
	return errors.Join(errs...)
}

// CorruptConfigError is a stored configuration that fails Validate. Config
// holds what was read, for init only, which may overwrite it.
type CorruptConfigError struct {
	Name   string // namespace/name of the ConfigMap
	Config *Config
	Err    error
}

func (e *CorruptConfigError) Error() string {
	return fmt.Sprintf("configmap %s is corrupt, so nothing was done: %s; "+
		"repair it by re-running `kubectl stage init` with the flags it was initialized with (it rewrites the configuration and keeps the PKI)",
		e.Name, strings.ReplaceAll(e.Err.Error(), "\n", "; "))
}

func (e *CorruptConfigError) Unwrap() error { return e.Err }

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
	WireGuardPublicKey string `json:"wireGuardPublicKey,omitempty"`
	// Endpoint (WireGuard) is the underlay HOST:PORT where other sites
	// reach this node directly, declared at join; "auto" for where the hub
	// sees its packets come from; empty behind NAT.
	Endpoint string `json:"endpoint,omitempty"`
	// RelayOnly (WireGuard) keeps every path of this node through the hub.
	RelayOnly         bool      `json:"relayOnly,omitempty"`
	CredentialExpires time.Time `json:"credentialExpires"`
	TokenID           string    `json:"tokenID"`
	TokenExpires      time.Time `json:"tokenExpires"`
	EnrolledAt        time.Time `json:"enrolledAt"`
}

// Validate checks a record read from the cluster: its fields name files and
// land in the hub's configuration.
func (r *NodeRecord) Validate() error {
	if errs := validation.IsDNS1123Subdomain(r.Name); len(errs) > 0 {
		return fmt.Errorf("name %q: %s", r.Name, strings.Join(errs, "; "))
	}
	if err := vpn.ValidatePeer(vpn.Peer{Name: r.Name, Site: r.Site, IP: r.OverlayIP, WireGuardPublicKey: r.WireGuardPublicKey}, r.VPN); err != nil {
		return err
	}
	if _, err := vpn.ParseBackend(string(r.VPN)); err != nil {
		return fmt.Errorf("vpn: %w", err)
	}
	if r.Endpoint != "" && r.Endpoint != mesh.EndpointAuto {
		if _, _, err := vpn.SplitEndpoint(r.Endpoint); err != nil {
			return fmt.Errorf("endpoint: %w", err)
		}
	}
	for _, c := range r.CertificateSerial {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return fmt.Errorf("certificateSerial %q: want lowercase hex", r.CertificateSerial)
		}
	}
	return nil
}

// CorruptRecordError is a record that fails Validate.
type CorruptRecordError struct {
	Namespace, Name string // the ConfigMap's
	Err             error
}

func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("configmap %s/%s is corrupt, so nothing was done: %v; kubectl stage did not write it so: inspect it, delete it (kubectl delete configmap -n %s %s), then run `kubectl stage leave NODE` for its node",
		e.Namespace, e.Name, e.Err, e.Namespace, e.Name)
}

func (e *CorruptRecordError) Unwrap() error { return e.Err }

// Validate checks the hub credentials read from the cluster, for the backend
// whose keys are present: they are written into every node's configuration
// and the hub's, so each must be exactly a key or a PEM block.
func (h HubSecrets) Validate() error {
	var errs []error
	if _, ok := h[WGPrivateKey]; ok {
		if err := vpn.ValidateWireGuardKey(string(h[WGPrivateKey])); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", WGPrivateKey, err))
		}
		if err := vpn.ValidateWireGuardKey(string(h[WGPublicKeyKey])); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", WGPublicKeyKey, err))
		}
	}
	if _, ok := h[TLSCryptKey]; ok {
		if err := vpn.ValidateTLSCryptKey(h[TLSCryptKey]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", TLSCryptKey, err))
		}
		for key, types := range map[string][]string{HubCertKey: {"CERTIFICATE"}, HubKeyKey: {"EC PRIVATE KEY", "PRIVATE KEY"}, CRLKey: {"X509 CRL"}} {
			if _, err := vpn.CanonicalPEM(key, h[key], types...); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// CorruptSecretError is a hub Secret that fails Validate.
type CorruptSecretError struct {
	Name string // namespace/name
	Err  error
}

func (e *CorruptSecretError) Error() string {
	return fmt.Sprintf("secret %s is corrupt, so nothing was done: %s; restore it from a backup, or delete it and re-run `kubectl stage init` (new hub credentials: every node then needs a new bundle)",
		e.Name, strings.ReplaceAll(e.Err.Error(), "\n", "; "))
}

func (e *CorruptSecretError) Unwrap() error { return e.Err }

// SiteRecord is a site; it exists from the first join there.
type SiteRecord struct {
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
}

// Validate checks a site record read from the cluster.
func (r *SiteRecord) Validate() error {
	if errs := validation.IsDNS1123Label(r.Name); len(errs) > 0 {
		return fmt.Errorf("name %q: %s", r.Name, strings.Join(errs, "; "))
	}
	return nil
}
