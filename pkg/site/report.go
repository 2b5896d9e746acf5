package site

import (
	"context"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/token"
)

// Node states as `kubectl stage status` shows them.
const (
	NodeReady     = "Ready"
	NodeNotReady  = "NotReady"
	NodeNotJoined = "NotJoined"
	// Token states.
	TokenValid   = "valid"
	TokenExpired = "expired"
	TokenDeleted = "deleted"
)

// NodeStatus is one enrolled node as seen now.
type NodeStatus struct {
	Name              string    `json:"name"`
	Site              string    `json:"site"`
	OverlayIP         string    `json:"overlayIP"`
	VPN               string    `json:"vpn"`
	State             string    `json:"state"`
	InternalIP        string    `json:"internalIP,omitempty"`
	CredentialExpires time.Time `json:"credentialExpires"`
	TokenID           string    `json:"tokenID"`
	TokenExpires      time.Time `json:"tokenExpires"`
	TokenState        string    `json:"tokenState"`
	EnrolledAt        time.Time `json:"enrolledAt"`
}

// SiteStatus sums up a site.
type SiteStatus struct {
	Name      string    `json:"name"`
	Nodes     int       `json:"nodes"`
	Ready     int       `json:"ready"`
	Pods      int       `json:"pods"`
	CreatedAt time.Time `json:"createdAt"`
	// Apps counts the running pods of each app (label app.kubernetes.io/name,
	// else app) on the site's nodes: how many peers run where.
	Apps map[string]int `json:"apps,omitempty"`
}

// Report is the enrolled fleet.
type Report struct {
	Sites []SiteStatus `json:"sites"`
	Nodes []NodeStatus `json:"nodes"`
}

// BuildReport joins the records with the Node objects, bootstrap tokens and
// pods the cluster has now.
func (s *Store) BuildReport(ctx context.Context, now time.Time) (*Report, error) {
	records, err := s.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	sites, err := s.Sites(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := s.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	nodeByName := map[string]*corev1.Node{}
	siteOfNode := map[string]string{}
	for i := range nodes.Items {
		n := &nodes.Items[i]
		nodeByName[n.Name] = n
		if site := n.Labels[api.LabelSite]; site != "" {
			siteOfNode[n.Name] = site
		}
	}

	report := &Report{}
	bySite := map[string]*SiteStatus{}
	for _, sr := range sites {
		bySite[sr.Name] = &SiteStatus{Name: sr.Name, CreatedAt: sr.CreatedAt}
	}
	siteStatus := func(name string) *SiteStatus {
		if st, ok := bySite[name]; ok {
			return st
		}
		st := &SiteStatus{Name: name}
		bySite[name] = st
		return st
	}
	for _, r := range records {
		ns := NodeStatus{
			Name: r.Name, Site: r.Site, OverlayIP: r.OverlayIP.String(), VPN: string(r.VPN), State: NodeNotJoined,
			CredentialExpires: r.CredentialExpires, TokenID: r.TokenID, TokenExpires: r.TokenExpires, EnrolledAt: r.EnrolledAt,
		}
		if n, ok := nodeByName[r.Name]; ok {
			ns.State = NodeNotReady
			if NodeIsReady(n) {
				ns.State = NodeReady
			}
			for _, a := range n.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					ns.InternalIP = a.Address
					break
				}
			}
		}
		if ns.TokenState, err = s.tokenState(ctx, r.TokenID, now); err != nil {
			return nil, err
		}
		st := siteStatus(r.Site)
		st.Nodes++
		if ns.State == NodeReady {
			st.Ready++
		}
		report.Nodes = append(report.Nodes, ns)
	}

	pods, err := s.Client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{FieldSelector: "status.phase=Running"})
	if err != nil {
		return nil, err
	}
	for _, p := range pods.Items {
		siteName, ok := siteOfNode[p.Spec.NodeName]
		if !ok {
			continue
		}
		st := siteStatus(siteName)
		st.Pods++
		app := p.Labels["app.kubernetes.io/name"]
		if app == "" {
			app = p.Labels["app"]
		}
		if app != "" {
			if st.Apps == nil {
				st.Apps = map[string]int{}
			}
			st.Apps[p.Namespace+"/"+app]++
		}
	}
	for _, st := range bySite {
		report.Sites = append(report.Sites, *st)
	}
	slices.SortFunc(report.Sites, func(a, b SiteStatus) int { return strings.Compare(a.Name, b.Name) })
	return report, nil
}

func (s *Store) tokenState(ctx context.Context, id string, now time.Time) (string, error) {
	secret, err := s.Client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return TokenDeleted, nil
	}
	if apierrors.IsForbidden(err) {
		return "unknown", nil
	}
	if err != nil {
		return "", err
	}
	st, err := token.StatusOf(secret, now)
	if err != nil {
		return "", err
	}
	if st.Expired {
		return TokenExpired, nil
	}
	return TokenValid, nil
}

// NodeIsReady reports whether the node's Ready condition is True.
func NodeIsReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
