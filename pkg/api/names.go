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
	// ObservedEndpointsName is the ConfigMap in which the hub's agent
	// publishes the underlay endpoint it sees each node's packets come from
	// (node name to IP:PORT): where nodes that joined with --endpoint auto
	// are reached.
	ObservedEndpointsName = "kubectl-stage-observed-endpoints"
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

	// AnnotationNetStatus is set by a node's agent on its own Node (the
	// kubelet's credentials may patch it) to the JSON of netcond.Status: the
	// network conditions it applies and what it measures.
	AnnotationNetStatus = Prefix + "net-status"

	// AgentRoleName is the Role (and RoleBinding) that lets every node's
	// credentials (group system:nodes) read the ConfigMaps of
	// SystemNamespace, which the node agent watches; nothing else.
	AgentRoleName = "kubectl-stage-agent"
	// NodesGroup is the group of every kubelet's credentials.
	NodesGroup = "system:nodes"
)

// Bootstrap tokens created by `join` carry this description prefix and are
// usable by kubeadm join (this group is what kubeadm's own tokens carry).
const (
	TokenDescriptionPrefix = "kubectl-stage join "
	KubeadmNodeTokenGroup  = "system:bootstrappers:kubeadm:default-node-token"
)

// The webhook contract: what a P2P pod (or its namespace) writes to opt in
// and configure itself, and what the webhook injects. README documents it.
const (
	// LabelInject opts a pod, or every pod of a namespace, in ("enabled").
	LabelInject      = Prefix + "inject"
	LabelInjectValue = "enabled"
	// LabelApp groups the peers of one P2P app; the webhook sets it on every
	// pod it mutates (from AnnotationApp, app.kubernetes.io/name or app).
	LabelApp = Prefix + "app"

	// AnnotationApp names the app when the pod carries neither
	// app.kubernetes.io/name nor app.
	AnnotationApp = Prefix + "app"
	// AnnotationSites chooses the sites: "all" (default), a comma-separated
	// list of site names, or a count such as "3".
	AnnotationSites = Prefix + "sites"
	// AnnotationPlacement is "spread" (default: even spread over the chosen
	// sites) or "one-per-site" (a StatefulSet's pod N pinned to the N-th
	// chosen site; other pods spread by the scheduler with maxSkew 1, which
	// is exact when they are created at once).
	AnnotationPlacement = Prefix + "placement"
	// AnnotationPort is the peer port; it makes advertise addresses and
	// seeds ip:port.
	AnnotationPort = Prefix + "port"
	// AnnotationSeeds is how many seed peers to inject (default 3).
	AnnotationSeeds = Prefix + "seeds"
	// AnnotationSeedService is the headless Service whose DNS name is the
	// seed fallback (default: the app name).
	AnnotationSeedService = Prefix + "seed-service"
	// AnnotationInjected records what the webhook did (for humans and for
	// idempotence checks).
	AnnotationInjected = Prefix + "injected"

	// LabelZone is copied by the API server from a node onto its pods at
	// binding (PodTopologyLabelsAdmission), which is how a pod learns its
	// site through the downward API; join sets it to the site.
	LabelZone = "topology.kubernetes.io/zone"
)

// Environment variables the webhook injects into every container.
const (
	EnvAdvertiseIP   = "STAGE_ADVERTISE_IP"   // the node's overlay IP (status.hostIP)
	EnvAdvertiseAddr = "STAGE_ADVERTISE_ADDR" // ip:port, when the port annotation is set
	EnvNodeName      = "STAGE_NODE_NAME"
	EnvSite          = "STAGE_SITE"
	EnvPodName       = "STAGE_POD_NAME"
	EnvPeerSeeds     = "STAGE_PEER_SEEDS" // comma-separated ip[:port] of ready peers
	EnvSeedDNS       = "STAGE_SEED_DNS"   // headless Service name, the fallback
	EnvSeedURL       = "STAGE_SEED_URL"   // the seed endpoint's current list for this pod, when the webhook serves one
)

// Rollout bookkeeping, kept on the workload being rolled out so that any
// user (or a re-run) sees and continues the same rollout.
const (
	// AnnotationRollout holds the JSON state of the current (or last) rollout.
	AnnotationRollout = Prefix + "rollout"
	// AnnotationRolloutHistory holds the JSON list of the app's revisions.
	AnnotationRolloutHistory = Prefix + "rollout-history"
	// AnnotationRevision is set on the pod template of every revision the
	// rollout writes; a pod's value tells which revision it runs. Pods
	// without it run revision 1, the template found before the first rollout.
	AnnotationRevision = Prefix + "revision"
	// AnnotationSiteOf marks a per-site Deployment with the Deployment it was
	// split from ("<name>"); LabelSite on it names its site.
	AnnotationSiteOf = Prefix + "site-of"
)

// AnnotationPeersEndpoint, on a peer's pod (template), says where the pod
// serves its own view of the network: "[PORT]/PATH" such as ":7946/peers",
// read through the API server's pod proxy by `kubectl stage graph`.
const AnnotationPeersEndpoint = Prefix + "peers-endpoint"
