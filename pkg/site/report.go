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
	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/token"
)

// Report is the enrolled fleet, as the kubectl-stage.io/v1alpha1 objects
// `sites` and `status` print.
type Report struct {
	Sites v1alpha1.SiteList
	Nodes v1alpha1.EnrolledNodeList
	// Shape is the overlay's: "mesh" (WireGuard) or "star" (OpenVPN), when
	// the view asked for the paths.
	Shape string
}

// Object is the record as kubectl-stage.io/v1alpha1 prints it, before the
// cluster is asked about the node: not joined yet.
func (r NodeRecord) Object() v1alpha1.EnrolledNode {
	return v1alpha1.EnrolledNode{
		ObjectMeta: metav1.ObjectMeta{Name: r.Name, CreationTimestamp: metav1.NewTime(r.EnrolledAt)},
		Spec: v1alpha1.EnrolledNodeSpec{Site: r.Site, OverlayIP: r.OverlayIP.String(), VPN: string(r.VPN), TokenID: r.TokenID,
			Endpoint: r.Endpoint, RelayOnly: r.RelayOnly},
		Status: v1alpha1.EnrolledNodeStatus{
			State: v1alpha1.NodeNotJoined, CredentialExpires: metav1.NewTime(r.CredentialExpires), TokenExpires: metav1.NewTime(r.TokenExpires),
		},
	}
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
	bySite := map[string]*v1alpha1.Site{}
	for _, sr := range sites {
		bySite[sr.Name] = &v1alpha1.Site{ObjectMeta: metav1.ObjectMeta{Name: sr.Name, CreationTimestamp: metav1.NewTime(sr.CreatedAt)}}
	}
	siteStatus := func(name string) *v1alpha1.SiteStatus {
		if st, ok := bySite[name]; ok {
			return &st.Status
		}
		st := &v1alpha1.Site{ObjectMeta: metav1.ObjectMeta{Name: name}}
		bySite[name] = st
		return &st.Status
	}
	for _, r := range records {
		n := r.Object()
		if node, ok := nodeByName[r.Name]; ok {
			n.Status.State = v1alpha1.NodeNotReady
			if NodeIsReady(node) {
				n.Status.State = v1alpha1.NodeReady
			}
			for _, a := range node.Status.Addresses {
				if a.Type == corev1.NodeInternalIP {
					n.Status.InternalIP = a.Address
					break
				}
			}
		}
		if n.Status.TokenState, err = s.tokenState(ctx, r.TokenID, now); err != nil {
			return nil, err
		}
		st := siteStatus(r.Site)
		st.Nodes++
		if n.Status.State == v1alpha1.NodeReady {
			st.Ready++
		}
		report.Nodes.Items = append(report.Nodes.Items, n)
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
		report.Sites.Items = append(report.Sites.Items, *st)
	}
	slices.SortFunc(report.Sites.Items, func(a, b v1alpha1.Site) int { return strings.Compare(a.Name, b.Name) })
	return report, nil
}

func (s *Store) tokenState(ctx context.Context, id string, now time.Time) (string, error) {
	secret, err := s.Client.CoreV1().Secrets(metav1.NamespaceSystem).Get(ctx, bootstraputil.BootstrapTokenSecretName(id), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return v1alpha1.TokenDeleted, nil
	}
	if apierrors.IsForbidden(err) {
		return v1alpha1.TokenUnknown, nil
	}
	if err != nil {
		return "", err
	}
	st, err := token.StatusOf(secret, now)
	if err != nil {
		return "", err
	}
	if st.Expired {
		return v1alpha1.TokenExpired, nil
	}
	return v1alpha1.TokenValid, nil
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
