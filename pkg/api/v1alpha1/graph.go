package v1alpha1

import (
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// PeerGraph is who knows whom among an app's peers, each peer's own view
// read from its peers endpoint: the app is its name, in its namespace.
type PeerGraph struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	// Peers are the app's running pods, by site then name.
	Peers []GraphPeer `json:"peers"`
	// Links are the live peers each peer's view lists, by source then target.
	Links   []GraphLink  `json:"links"`
	Summary GraphSummary `json:"summary"`
}

// GraphPeer is one peer and what its view says.
type GraphPeer struct {
	Pod  string `json:"pod"`
	Site string `json:"site"`
	Node string `json:"node"`
	// Endpoint is where its view was read ("PORT/PATH"); empty when the pod
	// declares none.
	Endpoint string `json:"endpoint,omitempty"`
	// Answered is false when its view could not be read; Error says why.
	Answered bool   `json:"answered"`
	Error    string `json:"error,omitempty"`
	// Known is how many other live peers of the app its view lists, of which
	// CrossSite at another site than its own.
	Known     int `json:"known"`
	CrossSite int `json:"crossSite"`
	// Unknown are the live entries of its view that are no pod of the app
	// (a peer that left, or another network).
	Unknown []string `json:"unknown,omitempty"`
}

// GraphLink says From's view lists To as live.
type GraphLink struct {
	From      string `json:"from"`
	To        string `json:"to"`
	CrossSite bool   `json:"crossSite"`
}

// GraphSummary is the shape of the network.
type GraphSummary struct {
	Peers    int `json:"peers"`
	Answered int `json:"answered"`
	// Components counts the connected components (links taken both ways).
	Components int `json:"components"`
	// Isolated are the peers with no link either way.
	Isolated []string `json:"isolated,omitempty"`
	// NotAnswering are the peers whose view could not be read.
	NotAnswering   []string `json:"notAnswering,omitempty"`
	Links          int      `json:"links"`
	CrossSiteLinks int      `json:"crossSiteLinks"`
	// CrossSitePercent is the share of links between two sites, 0-100.
	CrossSitePercent int `json:"crossSitePercent"`
	// SitesWithoutCrossSiteLinks are sites none of whose peers has a link
	// to or from another site: cut off from the rest.
	SitesWithoutCrossSiteLinks []string `json:"sitesWithoutCrossSiteLinks,omitempty"`
}

// DeepCopyObject implements runtime.Object.
func (in *PeerGraph) DeepCopyObject() runtime.Object {
	out := *in
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Peers = slices.Clone(in.Peers)
	for i := range out.Peers {
		out.Peers[i].Unknown = slices.Clone(in.Peers[i].Unknown)
	}
	out.Links = slices.Clone(in.Links)
	out.Summary.Isolated = slices.Clone(in.Summary.Isolated)
	out.Summary.NotAnswering = slices.Clone(in.Summary.NotAnswering)
	out.Summary.SitesWithoutCrossSiteLinks = slices.Clone(in.Summary.SitesWithoutCrossSiteLinks)
	return &out
}
