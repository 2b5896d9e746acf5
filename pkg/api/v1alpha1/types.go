// Package v1alpha1 is the kubectl-stage.io/v1alpha1 API: the objects that
// `kubectl stage` prints with -o json|yaml|name|jsonpath|go-template. They
// are documented in docs/api.md and defined here only, so that a script can
// rely on their fields; the API server does not serve them (the plugin
// computes them from the cluster's state), as `kubectl version -o json`
// prints objects no server stores.
package v1alpha1

import (
	"maps"
	"slices"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
	"github.com/kubectl-stage/kubectl-stage/pkg/version"
)

// SchemeGroupVersion is kubectl-stage.io/v1alpha1.
var SchemeGroupVersion = schema.GroupVersion{Group: api.Group, Version: "v1alpha1"}

// AddToScheme registers every type of this package, so that printers can
// set each object's apiVersion and kind from its Go type.
func AddToScheme(s *runtime.Scheme) error {
	s.AddKnownTypes(SchemeGroupVersion,
		&Site{}, &SiteList{}, &EnrolledNode{}, &EnrolledNodeList{}, &PluginVersion{},
		&Rollout{}, &RolloutRevision{}, &RolloutRevisionList{}, &PeerGraph{},
		&NetworkPath{}, &NetworkPathList{}, &NetworkMatrix{})
	return nil
}

// Site is a site of the staging cluster: it exists from the first join there.
type Site struct {
	metav1.TypeMeta `json:",inline"`
	// Name is the site; CreationTimestamp is when its first node was enrolled.
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Status            SiteStatus `json:"status"`
}

// SiteStatus counts what runs at a site now.
type SiteStatus struct {
	// Nodes enrolled at the site, and how many of them are Ready.
	Nodes int `json:"nodes"`
	Ready int `json:"ready"`
	// Pods running on the site's nodes.
	Pods int `json:"pods"`
	// Apps counts the running pods of each app (NAMESPACE/APP, from the label
	// app.kubernetes.io/name or app): how many peers run where.
	Apps map[string]int `json:"apps,omitempty"`
	// Paths is how packets travel from this site to each other site: direct,
	// relayed (through the hub), or mixed (some node pairs each way); on an
	// OpenVPN overlay, a star, every one is relayed.
	Paths map[string]string `json:"paths,omitempty"`
}

// Site path kinds besides the pair kinds (direct, relayed).
const PathMixed = "mixed"

// SiteList is the sites, by name.
type SiteList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Site `json:"items"`
}

// EnrolledNode is a node enrolled with `kubectl stage join`. It holds no
// secret: the token's ID, not the token.
type EnrolledNode struct {
	metav1.TypeMeta `json:",inline"`
	// Name is the node; CreationTimestamp is when it was enrolled.
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              EnrolledNodeSpec   `json:"spec"`
	Status            EnrolledNodeStatus `json:"status"`
}

// EnrolledNodeSpec is what enrollment gave the node.
type EnrolledNodeSpec struct {
	Site      string `json:"site"`
	OverlayIP string `json:"overlayIP"`
	// VPN is the overlay's backend: openvpn or wireguard.
	VPN string `json:"vpn"`
	// TokenID names the bootstrap token (Secret kube-system/bootstrap-token-ID).
	TokenID string `json:"tokenID"`
	// Endpoint (WireGuard) is the underlay HOST:PORT other sites reach the
	// node at directly; empty behind NAT.
	Endpoint string `json:"endpoint,omitempty"`
	// RelayOnly (WireGuard): every path of the node goes through the hub.
	RelayOnly bool `json:"relayOnly,omitempty"`
}

// Node states and token states of EnrolledNodeStatus.
const (
	NodeReady     = "Ready"
	NodeNotReady  = "NotReady"
	NodeNotJoined = "NotJoined"

	TokenValid   = "Valid"
	TokenExpired = "Expired"
	TokenDeleted = "Deleted"
	TokenUnknown = "Unknown"
)

// EnrolledNodeStatus is the node as the cluster sees it now.
type EnrolledNodeStatus struct {
	// State is NotJoined (no Node object yet), NotReady or Ready.
	State string `json:"state"`
	// InternalIP is the Node's InternalIP: the overlay IP once joined.
	InternalIP        string      `json:"internalIP,omitempty"`
	CredentialExpires metav1.Time `json:"credentialExpires"`
	TokenExpires      metav1.Time `json:"tokenExpires"`
	// TokenState is Valid, Expired, Deleted (used up or revoked), or Unknown
	// (the caller may not read kube-system Secrets).
	TokenState string `json:"tokenState"`
}

// EnrolledNodeList is the enrolled nodes, by name.
type EnrolledNodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []EnrolledNode `json:"items"`
}

// PluginVersion is `kubectl stage version`'s object; clientVersion has the
// shape of `kubectl version -o json`'s.
type PluginVersion struct {
	metav1.TypeMeta `json:",inline"`
	ClientVersion   version.Info `json:"clientVersion"`
}

// DeepCopyObject implements runtime.Object.
func (in *Site) DeepCopyObject() runtime.Object {
	out := in.deepCopy()
	return &out
}

func (in *Site) deepCopy() Site {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Status.Apps = maps.Clone(in.Status.Apps)
	out.Status.Paths = maps.Clone(in.Status.Paths)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *SiteList) DeepCopyObject() runtime.Object {
	out := &SiteList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range in.Items {
		out.Items = append(out.Items, in.Items[i].deepCopy())
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *EnrolledNode) DeepCopyObject() runtime.Object {
	out := in.deepCopy()
	return &out
}

func (in *EnrolledNode) deepCopy() EnrolledNode {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *EnrolledNodeList) DeepCopyObject() runtime.Object {
	out := &EnrolledNodeList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range in.Items {
		out.Items = append(out.Items, in.Items[i].deepCopy())
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *PluginVersion) DeepCopyObject() runtime.Object {
	out := *in
	return &out
}

// Rollout is an app's site-by-site rollout, as `kubectl stage rollout` and
// its status, resume and undo verbs print it. It is kept in annotations of
// the workload itself (kubectl-stage.io/rollout).
type Rollout struct {
	metav1.TypeMeta `json:",inline"`
	// Name and namespace are the workload's.
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              RolloutSpec   `json:"spec"`
	Status            RolloutStatus `json:"status"`
}

// RolloutSpec is the rollout's plan.
type RolloutSpec struct {
	// Workload is the rolled-out object: Deployment, StatefulSet or DaemonSet.
	Workload WorkloadReference `json:"workload"`
	// Revision is the revision being rolled out.
	Revision int `json:"revision"`
	// Waves are the sites of each wave, in order.
	Waves [][]string   `json:"waves"`
	Gates RolloutGates `json:"gates"`
}

// WorkloadReference names a workload in the rollout's namespace.
type WorkloadReference struct {
	Kind string `json:"kind"`
	Name string `json:"name"`
}

// RolloutGates decide when a site's wave has succeeded. They are stored with
// the rollout so that `resume`, run by anyone, applies the same gates.
type RolloutGates struct {
	// MinReady is how long every new pod of a site must have been Ready.
	MinReady metav1.Duration `json:"minReady"`
	// Timeout bounds each wave (0: none).
	Timeout metav1.Duration `json:"timeout"`
	// HealthExec is a command run through sh -c after a site is Ready.
	HealthExec string `json:"healthExec,omitempty"`
	// HealthHTTP is a URL (with {site} replaced) that must answer 2xx.
	HealthHTTP string `json:"healthHTTP,omitempty"`
	// Peers, when Min > 0, holds a site's wave until each of its new pods'
	// own view of its peers (annotation kubectl-stage.io/peers-endpoint,
	// read through the API server's pod proxy) lists enough of them.
	Peers PeerGate `json:"peers,omitzero"`
	// OnFailure is what a failed wave does: "pause" (or empty: stop for a
	// person to resume or undo) or "undo" (return every site to the
	// previous revision at once).
	OnFailure string `json:"onFailure,omitempty"`
}

// PeerGate is --gate-peers MIN[,cross-site=N]: each new pod's view must
// list at least Min live peers of the app, CrossSite of them at other sites.
type PeerGate struct {
	Min       int `json:"min"`
	CrossSite int `json:"crossSite,omitempty"`
}

// What a failed wave does (RolloutGates.OnFailure).
const (
	OnFailurePause = "pause"
	OnFailureUndo  = "undo"
)

// Rollout phases, and the result of a site in a rollout.
const (
	RolloutProgressing = "Progressing"
	RolloutPaused      = "Paused"
	RolloutFailed      = "Failed"
	RolloutComplete    = "Complete"
	// RolloutUnchanged: the workload already ran the template asked for.
	RolloutUnchanged = "Unchanged"

	SiteUpdated    = "Updated"
	SiteFailed     = "Failed"
	SiteNotReached = "NotReached"
	SiteWaiting    = "Waiting"
	// SiteLeft: every node of the site left the cluster during the
	// rollout, which passed it with no pod to update.
	SiteLeft = "Left"
)

// RolloutStatus is where the rollout stands.
type RolloutStatus struct {
	// Phase is Progressing, Paused, Failed, Complete or Unchanged.
	Phase string `json:"phase"`
	// FailedSite and Message say why the rollout stopped.
	FailedSite string `json:"failedSite,omitempty"`
	Message    string `json:"message,omitempty"`
	// Cause says why a runner began the rollout by itself: an automatic
	// undo (--on-failure undo) names the failure it undoes.
	Cause   string      `json:"cause,omitempty"`
	Started metav1.Time `json:"started,omitempty"`
	Updated metav1.Time `json:"updated,omitempty"`
	// Sites are the rollout's sites in wave order.
	Sites []RolloutSiteStatus `json:"sites,omitempty"`
}

// RolloutSiteStatus is one site's pods in the rollout.
type RolloutSiteStatus struct {
	Name string `json:"name"`
	// Wave is the site's wave, from 1.
	Wave int `json:"wave"`
	// Desired is the number of pods the site had when the rollout began;
	// Updated run the target revision; Ready have been Ready for the
	// minimum time; Outdated still run another revision.
	Desired  int `json:"desired"`
	Updated  int `json:"updated"`
	Ready    int `json:"ready"`
	Outdated int `json:"outdated"`
	// Result is Updated, Left (its nodes left), Failed, NotReached (the
	// rollout stopped first) or Waiting.
	Result string `json:"result"`
}

// RolloutRevision is one revision in an app's rollout history.
type RolloutRevision struct {
	metav1.TypeMeta `json:",inline"`
	// Name is WORKLOAD-REVISION; the namespace is the workload's.
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Revision          int    `json:"revision"`
	Cause             string `json:"cause"`
	Images            string `json:"images"`
	// Result is the rollout's phase when this revision was last rolled out.
	Result   string                 `json:"result,omitempty"`
	Template corev1.PodTemplateSpec `json:"template"`
}

// RolloutRevisionList is an app's history, oldest first.
type RolloutRevisionList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RolloutRevision `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (in *Rollout) DeepCopyObject() runtime.Object {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Waves = make([][]string, len(in.Spec.Waves))
	for i, wave := range in.Spec.Waves {
		out.Spec.Waves[i] = slices.Clone(wave)
	}
	out.Status.Sites = slices.Clone(in.Status.Sites)
	return &out
}

// DeepCopyObject implements runtime.Object.
func (in *RolloutRevision) DeepCopyObject() runtime.Object {
	out := in.deepCopy()
	return &out
}

func (in *RolloutRevision) deepCopy() RolloutRevision {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	in.Template.DeepCopyInto(&out.Template)
	return out
}

// DeepCopyObject implements runtime.Object.
func (in *RolloutRevisionList) DeepCopyObject() runtime.Object {
	out := &RolloutRevisionList{TypeMeta: in.TypeMeta}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range in.Items {
		out.Items = append(out.Items, in.Items[i].deepCopy())
	}
	return out
}

// Path kinds of NetworkPath.
const (
	PathDirect  = "direct"
	PathRelayed = "relayed"
)

// NetworkPath is how overlay packets travel between two enrolled nodes, as
// `kubectl stage net paths` prints it.
type NetworkPath struct {
	metav1.TypeMeta `json:",inline"`
	// Name is NODE-A.NODE-B (A before B by name).
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              NetworkPathSpec `json:"spec"`
}

// NetworkPathSpec is the pair and its path.
type NetworkPathSpec struct {
	NodeA string `json:"nodeA"`
	SiteA string `json:"siteA"`
	NodeB string `json:"nodeB"`
	SiteB string `json:"siteB"`
	// Path is direct (site to site) or relayed (through the hub).
	Path string `json:"path"`
	// Reason says why a path is relayed.
	Reason string `json:"reason,omitempty"`
	// Since is when the pair got this path: the later enrollment of the two.
	Since metav1.Time `json:"since"`
}

// NetworkPathList is every pair's path; the overlay's shape.
type NetworkPathList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Shape is "mesh" (WireGuard) or "star" (OpenVPN: every path relayed).
	Shape string        `json:"shape"`
	Items []NetworkPath `json:"items"`
}

// DeepCopyObject implements runtime.Object.
func (in *NetworkPath) DeepCopyObject() runtime.Object {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return &out
}

// DeepCopyObject implements runtime.Object.
func (in *NetworkPathList) DeepCopyObject() runtime.Object {
	out := &NetworkPathList{TypeMeta: in.TypeMeta, Shape: in.Shape}
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	for i := range in.Items {
		out.Items = append(out.Items, *in.Items[i].DeepCopyObject().(*NetworkPath))
	}
	return out
}

// NetworkMatrix is what `kubectl stage net` prints: per ordered site pair
// the conditions asked for, whether every node applies them (and why not),
// and the round trips the agents measured; per node pair what each measured;
// per node which agent applies the conditions.
type NetworkMatrix struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	netcond.Matrix    `json:",inline"`
}

// DeepCopyObject implements runtime.Object.
func (in *NetworkMatrix) DeepCopyObject() runtime.Object {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Sites = slices.Clone(in.Sites)
	out.Nodes = slices.Clone(in.Nodes)
	out.Agents = slices.Clone(in.Agents)
	return &out
}
