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
