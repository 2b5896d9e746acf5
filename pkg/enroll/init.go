package enroll

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/dryrun"
	"github.com/kubectl-stage/kubectl-stage/pkg/input"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Enroller runs the enrollment workflows against one cluster.
type Enroller struct {
	Client kubernetes.Interface
	Store  *site.Store
	// Out receives one line per step, so a user sees where a command is.
	Out io.Writer
	Now func() time.Time
	// DryRun is kubectl's strategy: under client the workflows read and
	// plan but write nothing; under server Client must send every write
	// with dryRun=All (the command layer's client does), and the workflows
	// stop where they would depend on a write having been persisted.
	DryRun kcmdutil.DryRunStrategy
}

// New returns an Enroller for client.
func New(client kubernetes.Interface, out io.Writer) *Enroller {
	return &Enroller{Client: client, Store: site.NewStore(client), Out: out, Now: time.Now}
}

// step reports one step, marked as kubectl marks a dry run's messages.
func (e *Enroller) step(format string, args ...any) {
	if e.Out != nil {
		_, _ = fmt.Fprintf(e.Out, format+dryrun.Suffix(e.DryRun)+"\n", args...)
	}
}

// InitOptions are the inputs of `kubectl stage init`.
type InitOptions struct {
	OverlayCIDR        string
	HubEndpoint        string
	VPN                string
	APIServerEndpoint  string
	PodCIDR            string
	ServiceCIDR        string
	TokenTTL           time.Duration
	CredentialValidity time.Duration
	// ServingCertificate is the API server's certificate, to check that it
	// is valid for the overlay address; nil skips the check.
	ServingCertificate *x509.Certificate
}

const caValidity = 10 * 365 * 24 * time.Hour

// Init records the staging configuration and creates the VPN PKI. It is
// idempotent: the PKI of an earlier run is kept, and the overlay CIDR or the
// VPN backend cannot change while nodes are enrolled.
func (e *Enroller) Init(ctx context.Context, o InitOptions) (*site.Config, error) {
	cfg, pool, err := o.config(e.Now())
	if err != nil {
		return nil, err
	}
	backend := cfg.VPN

	if err := access.Check(ctx, e.Client, "initialize kubectl-stage", []access.Rule{
		{Verb: "create", Resource: "namespaces"},
		{Verb: "get", Resource: "configmaps", Namespace: metav1.NamespaceSystem},
		{Verb: "get", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "create", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "update", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "create", Resource: "secrets", Namespace: api.SystemNamespace},
		{Verb: "get", Resource: "secrets", Namespace: api.SystemNamespace},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "roles", Namespace: api.SystemNamespace},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: api.SystemNamespace},
	}); err != nil {
		return nil, err
	}

	previous, err := e.Store.Config(ctx)
	var corrupt *site.CorruptConfigError
	if errors.As(err, &corrupt) {
		// init is the repair: it writes a valid configuration over it,
		// still refusing to move an overlay or backend that nodes use.
		e.step("warning: replacing the corrupt configuration (%v)", corrupt.Err)
		previous, err = corrupt.Config, nil
	}
	switch {
	case errors.Is(err, site.ErrNotInitialized):
	case err != nil:
		return nil, err
	default:
		if err := e.checkReinit(ctx, previous, cfg); err != nil {
			return nil, err
		}
		cfg.CreatedAt = previous.CreatedAt
	}

	cfg.PodCIDR, cfg.ServiceCIDR = o.PodCIDR, o.ServiceCIDR
	if cfg.PodCIDR == "" || cfg.ServiceCIDR == "" {
		pods, services, err := kubeadmNetworking(ctx, e.Client)
		if err != nil {
			return nil, err
		}
		if cfg.PodCIDR == "" {
			cfg.PodCIDR = pods
		}
		if cfg.ServiceCIDR == "" {
			cfg.ServiceCIDR = services
		}
	}
	if err := checkRanges(pool, cfg.PodCIDR, cfg.ServiceCIDR); err != nil {
		return nil, err
	}
	if o.ServingCertificate != nil {
		if err := checkServingCertificate(o.ServingCertificate, cfg.APIServerEndpoint); err != nil {
			return nil, err
		}
		e.step("API server certificate is valid for %s", cfg.APIServerEndpoint)
	}

	if e.DryRun == kcmdutil.DryRunClient {
		e.step("would create namespace %s if missing, the VPN credentials of a %s hub if missing, and save the staging configuration: overlay %s, hub %s, API server over the overlay %s",
			api.SystemNamespace, cfg.VPN, cfg.OverlayCIDR, cfg.HubEndpoint, cfg.APIServerEndpoint)
		return cfg, nil
	}
	created, err := e.Store.EnsureNamespace(ctx)
	if err != nil {
		return nil, err
	}
	if created && e.DryRun == kcmdutil.DryRunServer {
		// The API server checks an object in a namespace only once the
		// namespace exists; kubectl apply --dry-run=server stops here too.
		e.step("the API server accepted namespace %s; it does not exist yet, so the VPN credentials and the configuration that go into it cannot be checked by the API server before a real init", api.SystemNamespace)
		return cfg, nil
	}
	// The node agents keep the hub among their peers: its public key is
	// published in the configuration, which they may read (they may not
	// read the hub Secret, which holds the private key).
	if cfg.HubPublicKey, err = e.ensurePKI(ctx, backend); err != nil {
		return nil, err
	}
	if err := e.Store.SaveConfig(ctx, cfg); err != nil {
		return nil, err
	}
	e.step("staging configuration saved: overlay %s, %s hub %s, API server over the overlay %s", cfg.OverlayCIDR, cfg.VPN, cfg.HubEndpoint, cfg.APIServerEndpoint)
	// On either backend: the agents read the records and the network
	// conditions (on OpenVPN they keep no peers, but shape and measure).
	created, err = e.Store.EnsureAgentAccess(ctx)
	if err != nil {
		return nil, fmt.Errorf("letting the node agents read the records (role %s/%s): %w", api.SystemNamespace, api.AgentRoleName, err)
	}
	e.step("%s role %s/%s: every node's kubelet credentials may read this namespace's ConfigMaps (not its Secrets), for the node agent", createdOrKept(created), api.SystemNamespace, api.AgentRoleName)
	if _, err := e.Client.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, "cluster-info", metav1.GetOptions{}); apierrors.IsNotFound(err) {
		e.step("warning: kube-public/cluster-info is missing, so kubeadm join cannot discover this cluster: run `kubeadm init phase bootstrap-token` on a control-plane node")
	}
	return cfg, nil
}

// Validate checks the options that need no cluster; each error points at
// the input to change.
func (o InitOptions) Validate() error {
	_, _, err := o.config(time.Time{})
	return err
}

// config is the configuration the options describe, before the cluster is
// asked about its ranges, and the overlay's address pool.
func (o InitOptions) config(now time.Time) (*site.Config, *ipam.Pool, error) {
	backend, err := vpn.ParseBackend(o.VPN)
	if err != nil {
		return nil, nil, input.Fix(err, input.Use(InputVPN))
	}
	cfg := &site.Config{
		OverlayCIDR: o.OverlayCIDR, VPN: backend,
		TokenTTL: site.Duration{Duration: o.TokenTTL}, CredentialValidity: site.Duration{Duration: o.CredentialValidity},
		CreatedAt: now.UTC().Truncate(time.Second),
	}
	if o.TokenTTL <= 0 || o.CredentialValidity <= 0 {
		return nil, nil, input.Fix(errors.New("the token lifetime and the credential validity must be positive durations, such as 24h"),
			input.Use(InputTokenTTL), input.Use(InputCredentialValidity))
	}
	pool, err := cfg.Pool()
	if err != nil {
		return nil, nil, input.Fix(err, input.Use(InputOverlayCIDR))
	}
	if cfg.HubEndpoint, err = NormalizeEndpoint("hub endpoint", o.HubEndpoint, backend.DefaultPort()); err != nil {
		return nil, nil, input.Fix(err, input.Use(InputHubEndpoint))
	}
	apiEndpoint := o.APIServerEndpoint
	if apiEndpoint == "" {
		apiEndpoint = net.JoinHostPort(pool.Hub().String(), "6443")
	}
	if cfg.APIServerEndpoint, err = NormalizeEndpoint("API server endpoint", apiEndpoint, 6443); err != nil {
		return nil, nil, input.Fix(err, input.Use(InputAPIServerEndpoint))
	}
	if err := checkRanges(pool, o.PodCIDR, o.ServiceCIDR); err != nil {
		return nil, nil, err
	}
	return cfg, pool, nil
}

// checkRanges refuses an overlay that overlaps the pod or service range.
func checkRanges(pool *ipam.Pool, podCIDR, serviceCIDR string) error {
	if err := CheckOverlap(pool, "pod", InputPodCIDR, podCIDR); err != nil {
		return err
	}
	return CheckOverlap(pool, "service", InputServiceCIDR, serviceCIDR)
}

func (e *Enroller) checkReinit(ctx context.Context, previous, next *site.Config) error {
	if previous.OverlayCIDR == next.OverlayCIDR && previous.VPN == next.VPN {
		return nil
	}
	table, err := e.Store.Allocations(ctx)
	if err != nil {
		return err
	}
	if len(table) == 0 {
		return nil
	}
	if previous.OverlayCIDR != next.OverlayCIDR {
		return input.Fix(fmt.Errorf("the overlay CIDR is %s and %d node(s) hold addresses in it: refusing to change it to %s; remove them with `kubectl stage leave NODE` first, or keep the overlay CIDR %s",
			previous.OverlayCIDR, len(table), next.OverlayCIDR, previous.OverlayCIDR), input.Set(InputOverlayCIDR, previous.OverlayCIDR))
	}
	return input.Fix(fmt.Errorf("the VPN backend is %s and %d node(s) are enrolled with it: refusing to switch to %s; remove them with `kubectl stage leave NODE` first, or keep the VPN backend %s",
		previous.VPN, len(table), next.VPN, previous.VPN), input.Set(InputVPN, string(previous.VPN)))
}

// ensurePKI creates the VPN credentials once; later runs keep them. For
// WireGuard it returns the hub's public key (the one created, or kept).
func (e *Enroller) ensurePKI(ctx context.Context, backend vpn.Backend) (hubPublicKey string, err error) {
	if backend == vpn.WireGuard {
		return e.ensureWireGuardHub(ctx)
	}
	return "", e.ensureOpenVPNPKI(ctx)
}

func (e *Enroller) ensureWireGuardHub(ctx context.Context) (string, error) {
	key, err := vpn.NewWireGuardKey()
	if err != nil {
		return "", err
	}
	created, err := e.Store.CreateSecretIfAbsent(ctx, api.VPNHubName, corev1.SecretTypeOpaque, map[string][]byte{
		site.WGPrivateKey: []byte(key.Private), site.WGPublicKeyKey: []byte(key.Public),
	})
	if err != nil {
		return "", err
	}
	e.step("%s WireGuard hub key pair in secret %s/%s", createdOrKept(created), api.SystemNamespace, api.VPNHubName)
	if created {
		return key.Public, nil
	}
	hub, err := e.Store.Hub(ctx)
	if err != nil {
		return "", err
	}
	return string(hub[site.WGPublicKeyKey]), nil
}

func (e *Enroller) ensureOpenVPNPKI(ctx context.Context) error {
	ca, err := pki.NewCA("kubectl-stage-vpn-ca", caValidity)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	created, err := e.Store.CreateSecretIfAbsent(ctx, api.VPNCAName, corev1.SecretTypeTLS, map[string][]byte{
		corev1.TLSCertKey: ca.CertificatePEM(), corev1.TLSPrivateKeyKey: caKey,
	})
	if err != nil {
		return err
	}
	e.step("%s VPN certificate authority in secret %s/%s", createdOrKept(created), api.SystemNamespace, api.VPNCAName)
	if !created {
		if ca, err = e.Store.VPNCA(ctx); err != nil {
			return err
		}
	}
	hub, err := vpn.IssueHubCertificate(ca, caValidity)
	if err != nil {
		return err
	}
	hubKey, err := hub.KeyPEM()
	if err != nil {
		return err
	}
	tlsCrypt, err := vpn.NewTLSCryptKey()
	if err != nil {
		return err
	}
	data, err := site.InitialCRL(ca)
	if err != nil {
		return err
	}
	data[site.HubCertKey], data[site.HubKeyKey], data[site.TLSCryptKey] = hub.CertificatePEM(), hubKey, tlsCrypt
	created, err = e.Store.CreateSecretIfAbsent(ctx, api.VPNHubName, corev1.SecretTypeOpaque, data)
	if err != nil {
		return err
	}
	e.step("%s OpenVPN hub certificate, tls-crypt key and CRL in secret %s/%s", createdOrKept(created), api.SystemNamespace, api.VPNHubName)
	return nil
}

func createdOrKept(created bool) string {
	if created {
		return "created"
	}
	return "kept the existing"
}

// kubeadmNetworking reads the pod and service ranges from kubeadm's
// ClusterConfiguration, when the cluster was made by kubeadm.
func kubeadmNetworking(ctx context.Context, client kubernetes.Interface) (pods, services string, err error) {
	cm, err := client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", "", nil
	}
	if err != nil {
		return "", "", input.Fix(fmt.Errorf("reading kube-system/kubeadm-config for the pod and service CIDRs (or give them): %w", err),
			input.Use(InputPodCIDR), input.Use(InputServiceCIDR))
	}
	var cc struct {
		Networking struct {
			PodSubnet     string `json:"podSubnet"`
			ServiceSubnet string `json:"serviceSubnet"`
		} `json:"networking"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &cc); err != nil {
		return "", "", fmt.Errorf("kube-system/kubeadm-config has an unreadable ClusterConfiguration: %w", err)
	}
	return cc.Networking.PodSubnet, cc.Networking.ServiceSubnet, nil
}

// checkServingCertificate makes sure nodes dialing the API server over the
// overlay will accept its certificate.
func checkServingCertificate(cert *x509.Certificate, endpoint string) error {
	host, _, _ := net.SplitHostPort(endpoint)
	if err := cert.VerifyHostname(host); err == nil {
		return nil
	}
	var sans []string
	for _, ip := range cert.IPAddresses {
		sans = append(sans, ip.String())
	}
	sans = append(sans, cert.DNSNames...)
	slices.Sort(sans)
	return input.Fix(fmt.Errorf("the API server certificate is not valid for %s (it covers %v), so kubeadm join over the overlay would fail: on each control-plane node move /etc/kubernetes/pki/apiserver.{crt,key} aside and run `kubeadm init phase certs apiserver --apiserver-cert-extra-sans=%s`, then restart kube-apiserver; or skip this check", host, sans, host),
		input.Use(InputSkipCertCheck))
}

// ServingCertificate returns the certificate the API server of cfg presents.
// It is only inspected, never trusted, so verification is skipped here.
func ServingCertificate(ctx context.Context, cfg *rest.Config) (*x509.Certificate, error) {
	u, err := url.Parse(cfg.Host)
	if err != nil {
		return nil, err
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "443")
	}
	dialer := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, ServerName: u.Hostname()}} //nolint:gosec // reading SANs only
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("reading the API server certificate from %s: %w", addr, err)
	}
	defer func() { _ = conn.Close() }()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return nil, fmt.Errorf("the API server at %s presented no certificate", addr)
	}
	return certs[0], nil
}
