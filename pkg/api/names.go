// Package api is the one place that names what kubectl-stage writes into a
// cluster: its API group, and the labels, annotations and environment
// variables that the plugin, the webhook and user manifests agree on.
// Anything another component (or a user) must match on is defined here.
package api

const (
	// Group is the API group of kubectl-stage's own resources, and the
	// prefix of every label and annotation it owns.
	Group = "kubectl-stage.io"

	// Prefix starts every label and annotation key kubectl-stage owns.
	Prefix = Group + "/"

	// LabelSite is the node label carrying the site a node belongs to.
	// Scheduling constraints (node affinity, topology spread) key on it.
	LabelSite = Prefix + "site"

	// LabelManagedBy marks objects created by kubectl-stage
	// (app.kubernetes.io/managed-by=kubectl-stage).
	LabelManagedBy      = "app.kubernetes.io/managed-by"
	LabelManagedByValue = "kubectl-stage"

	// SystemNamespace holds the staging configuration, the VPN PKI and the
	// site registry.
	SystemNamespace = "kubectl-stage-system"
)

// Objects kubectl-stage keeps in SystemNamespace. Private keys live only in
// Secrets; ConfigMaps hold nothing secret.
const (
	// ConfigName is the ConfigMap with the staging configuration.
	ConfigName = "kubectl-stage-config"
	// IPAMName is the ConfigMap recording which overlay IP belongs to
	// which node; every allocation is an optimistic-concurrency update of it.
	IPAMName = "kubectl-stage-ipam"
	// VPNCAName is the Secret with the VPN certificate authority (OpenVPN).
	VPNCAName = "kubectl-stage-vpn-ca"
	// VPNHubName is the Secret with the hub's credentials: OpenVPN server
	// certificate, key, tls-crypt key and CRL, or the WireGuard hub keys.
	VPNHubName = "kubectl-stage-vpn-hub"
	// SitePrefix and NodePrefix name the per-site and per-node records.
	SitePrefix = "site-"
	NodePrefix = "node-"

	// LabelRecord tells site records ("site") from node records ("node").
	LabelRecord = Prefix + "record"

	// AnnotationOverlayIP is set on Node objects to the node's overlay address.
	AnnotationOverlayIP = Prefix + "overlay-ip"
)

// Bootstrap tokens created by `join` carry this description prefix and are
// usable by kubeadm join (this group is what kubeadm's own tokens carry).
const (
	TokenDescriptionPrefix = "kubectl-stage join "
	KubeadmNodeTokenGroup  = "system:bootstrappers:kubeadm:default-node-token"
)
