package enroll

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/bundle"
	"github.com/kubectl-stage/kubectl-stage/pkg/input"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/token"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// JoinOptions are the inputs of `kubectl stage join`.
type JoinOptions struct {
	Site string
	Node string
	// TokenTTL overrides the configured token lifetime when positive.
	TokenTTL time.Duration
	// Endpoint (WireGuard) is the underlay HOST:PORT where other sites
	// reach the node directly; the node's WireGuard listens on its port.
	Endpoint string
	// RelayOnly (WireGuard) keeps every path of the node through the hub.
	RelayOnly bool
}

// JoinResult is what a join produced.
type JoinResult struct {
	Record site.NodeRecord
	Bundle bundle.Bundle
	// Script is the rendered bundle (it holds secrets).
	Script []byte
}

// Join enrolls a node: overlay address, VPN credentials, bootstrap token and
// the join bundle. If any write fails, the writes before it are undone.
func (e *Enroller) Join(ctx context.Context, o JoinOptions) (*JoinResult, error) {
	if err := ValidateSiteName(o.Site); err != nil {
		return nil, err
	}
	if err := ValidateNodeName(o.Node); err != nil {
		return nil, err
	}
	if o.Endpoint != "" {
		if err := ValidateNodeEndpoint(o.Endpoint); err != nil {
			return nil, err
		}
	}
	rules := []access.Rule{
		{Verb: "get", Resource: "nodes"},
		{Verb: "get", Resource: "configmaps", Namespace: metav1.NamespacePublic},
		{Verb: "create", Resource: "secrets", Namespace: metav1.NamespaceSystem},
		{Verb: "delete", Resource: "secrets", Namespace: metav1.NamespaceSystem},
		{Verb: "get", Resource: "secrets", Namespace: api.SystemNamespace},
		{Verb: "get", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "create", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "update", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "delete", Resource: "configmaps", Namespace: api.SystemNamespace},
	}
	if err := access.Check(ctx, e.Client, "join a node", rules); err != nil {
		return nil, err
	}
	cfg, err := e.Store.Config(ctx)
	if err != nil {
		return nil, err
	}
	if err := e.checkMeshOptions(ctx, cfg, o); err != nil {
		return nil, err
	}
	if _, err := e.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{}); err == nil {
		return nil, input.Fix(fmt.Errorf("a node named %q is already in the cluster: pick another node name, or remove it first with `kubectl stage leave %s`", o.Node, o.Node), input.Use(InputNode))
	} else if !apierrors.IsNotFound(err) {
		return nil, err
	}
	if rec, found, err := e.Store.Node(ctx, o.Node); err != nil {
		return nil, err
	} else if found {
		return nil, input.Fix(fmt.Errorf("node %q is already enrolled at site %q with overlay IP %s: pick another node name, or run `kubectl stage leave %s` first", o.Node, rec.Site, rec.OverlayIP, o.Node), input.Use(InputNode))
	}

	caHash, err := e.clusterCAHash(ctx)
	if err != nil {
		return nil, err
	}
	network, err := cfg.Network()
	if err != nil {
		return nil, err
	}
	pool, err := cfg.Pool()
	if err != nil {
		return nil, err
	}
	now := e.Now()
	ttl := cfg.TokenTTL.Duration
	if o.TokenTTL > 0 {
		ttl = o.TokenTTL
	}
	tok, err := token.New(ttl, now)
	if err != nil {
		return nil, err
	}
	rec := site.NodeRecord{
		Name: o.Node, Site: o.Site, VPN: cfg.VPN, Endpoint: o.Endpoint, RelayOnly: o.RelayOnly,
		TokenID: tok.ID, TokenExpires: tok.Expires, EnrolledAt: now.UTC().Truncate(time.Second),
	}
	creds, err := e.issueCredentials(ctx, cfg, &rec, now)
	if err != nil {
		return nil, err
	}

	if e.DryRun == kcmdutil.DryRunClient {
		rec.OverlayIP, err = e.previewIP(ctx, pool, o.Node)
		if err != nil {
			return nil, err
		}
		e.step("would enroll %s at site %s with overlay IP %s, bootstrap token %s (expires %s)",
			o.Node, o.Site, rec.OverlayIP, tok.ID, tok.Expires.Format(time.RFC3339))
		return &JoinResult{Record: rec}, nil
	}
	// Under a server dry run every write below is checked by the API
	// server and none is persisted; the bundle is rendered all the same,
	// and the command layer does not write it.

	ip, err := e.Store.AllocateIP(ctx, pool, o.Node)
	if err != nil {
		if errors.Is(err, site.ErrNodeEnrolled) {
			return nil, input.Fix(fmt.Errorf("node %q is already enrolled (%v): pick another node name, or run `kubectl stage leave %s` first", o.Node, err, o.Node), input.Use(InputNode))
		}
		if errors.Is(err, ipam.ErrExhausted) {
			return nil, input.Fix(fmt.Errorf("allocating an overlay address in %s: %w; free addresses with `kubectl stage leave NODE` or re-run `kubectl stage init` with a larger overlay CIDR", cfg.OverlayCIDR, err),
				input.Use(InputOverlayCIDR))
		}
		return nil, fmt.Errorf("allocating an overlay address in %s: %w", cfg.OverlayCIDR, err)
	}
	rec.OverlayIP = ip
	// From here on the address is ours: a failure undoes every write (Undo
	// skips what was not written yet).
	rollback := func(cause error) error {
		_ = e.Undo(context.WithoutCancel(ctx), &JoinResult{Record: rec})
		return cause
	}
	e.step("allocated overlay IP %s for %s", ip, o.Node)

	if err := e.Store.CreateNode(ctx, &rec); err != nil {
		return nil, rollback(err)
	}
	if err := e.Store.EnsureSite(ctx, o.Site, now); err != nil {
		return nil, rollback(err)
	}

	secret := tok.SecretFor(o.Node)
	if _, err := e.Client.CoreV1().Secrets(metav1.NamespaceSystem).Create(ctx, secret, metav1.CreateOptions{}); err != nil {
		return nil, rollback(fmt.Errorf("creating bootstrap token secret kube-system/%s: %w", secret.Name, err))
	}
	e.step("created bootstrap token %s (expires %s) in kube-system/%s", tok.ID, tok.Expires.Format(time.RFC3339), secret.Name)

	vpnConfig, err := creds.clientConfig(network)
	if err != nil {
		return nil, rollback(err)
	}
	b := bundle.Bundle{
		Node: o.Node, Site: o.Site, OverlayIP: ip, Network: network, VPN: cfg.VPN, VPNConfig: vpnConfig,
		APIServerEndpoint: cfg.APIServerEndpoint, Token: tok.String(), TokenID: tok.ID, TokenExpires: tok.Expires,
		CACertHash: caHash, GeneratedAt: now,
	}
	script, err := b.Render()
	if err != nil {
		return nil, rollback(err)
	}
	return &JoinResult{Record: rec, Bundle: b, Script: script}, nil
}

// Undo reverses a join, or the part of one that was written, leaving the
// cluster as before the join: used when a later step fails, and when the
// bundle cannot be delivered (for example the file cannot be written).
func (e *Enroller) Undo(ctx context.Context, r *JoinResult) error {
	return errors.Join(
		ignoreNotFound(e.Client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, bootstraputil.BootstrapTokenSecretName(r.Record.TokenID), metav1.DeleteOptions{})),
		e.Store.DeleteNode(ctx, r.Record.Name),
		e.Store.ReleaseIP(ctx, r.Record.Name),
	)
}

// previewIP is the address a join would get now, for a client dry run.
func (e *Enroller) previewIP(ctx context.Context, pool *ipam.Pool, node string) (netip.Addr, error) {
	table, err := e.Store.Allocations(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	if held, ok := table.AddressOf(node); ok {
		return netip.Addr{}, fmt.Errorf("node %q already holds overlay address %s: run `kubectl stage leave %s` first", node, held, node)
	}
	return pool.Allocate(table, node)
}

// clusterCAHash pins the cluster CA from kube-public/cluster-info, exactly
// as kubeadm's discovery will see it.
func (e *Enroller) clusterCAHash(ctx context.Context) (string, error) {
	cm, err := e.Client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, "cluster-info", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", errors.New("kube-public/cluster-info not found, so kubeadm join cannot discover this cluster: run `kubeadm init phase bootstrap-token` on a control-plane node")
	}
	if err != nil {
		return "", err
	}
	ca, _, err := token.ClusterCAFromClusterInfo(cm)
	if err != nil {
		return "", err
	}
	return token.DiscoveryHash(ca), nil
}

// credentials are a node's VPN credentials before they are rendered.
type credentials struct {
	backend vpn.Backend
	openvpn vpn.OpenVPNClient
	wg      vpn.WireGuardClient
}

func (c credentials) clientConfig(network vpn.Network) (string, error) {
	if c.backend == vpn.WireGuard {
		c.wg.Network = network
		return c.wg.Render()
	}
	c.openvpn.Network = network
	return c.openvpn.Render()
}

func (e *Enroller) issueCredentials(ctx context.Context, cfg *site.Config, rec *site.NodeRecord, now time.Time) (credentials, error) {
	hub, err := e.Store.Hub(ctx)
	if err != nil {
		return credentials{}, err
	}
	if cfg.VPN == vpn.WireGuard {
		key, err := vpn.NewWireGuardKey()
		if err != nil {
			return credentials{}, err
		}
		rec.WireGuardPublicKey = key.Public
		rec.CredentialExpires = now.Add(cfg.CredentialValidity.Duration).UTC().Truncate(time.Second)
		wg := vpn.WireGuardClient{PrivateKey: key.Private, HubPublicKey: string(hub[site.WGPublicKeyKey])}
		if rec.Endpoint != "" && rec.Endpoint != mesh.EndpointAuto {
			// Other sites send to the declared port: the node listens on it.
			// (With auto they send where the hub sees the node's packets
			// come from, whatever port it listens on.)
			_, wg.ListenPort, err = vpn.SplitEndpoint(rec.Endpoint)
			if err != nil {
				return credentials{}, err
			}
		}
		return credentials{backend: vpn.WireGuard, wg: wg}, nil
	}
	ca, err := e.Store.VPNCA(ctx)
	if err != nil {
		return credentials{}, err
	}
	kp, err := vpn.IssueNodeCertificate(ca, rec.Name, rec.Site, cfg.CredentialValidity.Duration)
	if err != nil {
		return credentials{}, err
	}
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return credentials{}, err
	}
	rec.CertificateSerial = kp.Cert.SerialNumber.Text(16)
	rec.CredentialExpires = kp.Cert.NotAfter.UTC()
	return credentials{backend: vpn.OpenVPN, openvpn: vpn.OpenVPNClient{
		CA: ca.CertificatePEM(), Cert: kp.CertificatePEM(), Key: keyPEM, TLSCrypt: hub[site.TLSCryptKey],
	}}, nil
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// checkMeshOptions refuses --endpoint and --relay-only where they mean
// nothing (OpenVPN is a star) and an endpoint another node declared: two
// nodes cannot receive at one address and port.
func (e *Enroller) checkMeshOptions(ctx context.Context, cfg *site.Config, o JoinOptions) error {
	if o.Endpoint == "" && !o.RelayOnly {
		return nil
	}
	if cfg.VPN != vpn.WireGuard {
		return input.Fix(fmt.Errorf("the overlay uses %s, a star in which every path goes through the hub: a node endpoint and relay-only apply to WireGuard overlays only; leave them out", cfg.VPN),
			input.Use(InputEndpoint), input.Use(InputRelayOnly))
	}
	if o.Endpoint == "" || o.Endpoint == mesh.EndpointAuto {
		return nil
	}
	records, err := e.Store.Nodes(ctx)
	if err != nil {
		return err
	}
	for _, r := range records {
		if r.Endpoint == o.Endpoint {
			return input.Fix(fmt.Errorf("node %s already declared the endpoint %s: give this node its own address or UDP port", r.Name, o.Endpoint), input.Use(InputEndpoint))
		}
	}
	return nil
}
