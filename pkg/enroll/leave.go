package enroll

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	"k8s.io/kubectl/pkg/drain"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// LeaveOptions are the inputs of `kubectl stage leave`.
type LeaveOptions struct {
	Node string
	// DrainTimeout bounds the drain; zero waits forever.
	DrainTimeout time.Duration
	// Force evicts pods no controller manages too (as kubectl drain --force).
	Force bool
}

// Leave removes a node: cordon and drain it (evictions respect
// PodDisruptionBudgets), revoke its VPN credentials, delete its bootstrap
// token and Node object, release its overlay address and its record. Each
// step is idempotent and the record goes last, so after a failure a re-run
// picks up where this one stopped.
func (e *Enroller) Leave(ctx context.Context, o LeaveOptions) error {
	if err := ValidateNodeName(o.Node); err != nil {
		return err
	}
	if err := access.Check(ctx, e.Client, "remove a node", []access.Rule{
		{Verb: "get", Resource: "nodes"},
		{Verb: "patch", Resource: "nodes"},
		{Verb: "delete", Resource: "nodes"},
		{Verb: "list", Resource: "pods"},
		{Verb: "create", Resource: "pods/eviction"},
		{Verb: "delete", Resource: "secrets", Namespace: metav1.NamespaceSystem},
		{Verb: "update", Resource: "secrets", Namespace: api.SystemNamespace},
		{Verb: "update", Resource: "configmaps", Namespace: api.SystemNamespace},
		{Verb: "delete", Resource: "configmaps", Namespace: api.SystemNamespace},
	}); err != nil {
		return err
	}
	rec, enrolled, err := e.Store.Node(ctx, o.Node)
	if err != nil {
		return err
	}
	node, err := e.Client.CoreV1().Nodes().Get(ctx, o.Node, metav1.GetOptions{})
	nodeExists := err == nil
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if !enrolled && !nodeExists {
		table, err := e.Store.Allocations(ctx)
		if err != nil {
			return err
		}
		if _, held := table.AddressOf(o.Node); !held {
			return fmt.Errorf("node %q is not enrolled and not in the cluster: `kubectl stage status` lists the nodes", o.Node)
		}
	}

	if nodeExists {
		if err := e.drain(ctx, node, o); err != nil {
			return fmt.Errorf("draining %s: %w; nothing else was changed: fix the cause (a PodDisruptionBudget, a pod without controller: --force) and re-run `kubectl stage leave %s`", o.Node, err, o.Node)
		}
	}
	if enrolled {
		if err := e.revoke(ctx, rec); err != nil {
			return fmt.Errorf("revoking the VPN credentials of %s: %w; re-run `kubectl stage leave %s` to finish", o.Node, err, o.Node)
		}
		name := bootstraputil.BootstrapTokenSecretName(rec.TokenID)
		if err := ignoreNotFound(e.Client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, name, metav1.DeleteOptions{})); err != nil {
			return fmt.Errorf("deleting bootstrap token kube-system/%s: %w; re-run `kubectl stage leave %s` to finish", name, err, o.Node)
		}
		e.step("deleted bootstrap token %s", rec.TokenID)
	}
	if nodeExists {
		if err := ignoreNotFound(e.Client.CoreV1().Nodes().Delete(ctx, o.Node, metav1.DeleteOptions{})); err != nil {
			return fmt.Errorf("deleting node %s: %w; re-run `kubectl stage leave %s` to finish", o.Node, err, o.Node)
		}
		e.step("deleted node %s", o.Node)
	}
	if err := e.Store.ReleaseIP(ctx, o.Node); err != nil {
		return fmt.Errorf("releasing the overlay address of %s: %w; re-run `kubectl stage leave %s` to finish", o.Node, err, o.Node)
	}
	if err := e.Store.DeleteNode(ctx, o.Node); err != nil {
		return fmt.Errorf("deleting the record of %s: %w; re-run `kubectl stage leave %s` to finish", o.Node, err, o.Node)
	}
	if enrolled {
		e.step("released overlay IP %s; %s has left site %s", rec.OverlayIP, o.Node, rec.Site)
	}
	return nil
}

func (e *Enroller) drain(ctx context.Context, node *corev1.Node, o LeaveOptions) error {
	out := e.Out
	if out == nil {
		out = nopWriter{}
	}
	helper := &drain.Helper{
		Ctx:                 ctx,
		Client:              e.Client,
		Force:               o.Force,
		GracePeriodSeconds:  -1,
		IgnoreAllDaemonSets: true,
		DeleteEmptyDirData:  true,
		Timeout:             o.DrainTimeout,
		Out:                 out,
		ErrOut:              out,
	}
	if err := drain.RunCordonOrUncordon(helper, node, true); err != nil {
		return fmt.Errorf("cordoning: %w", err)
	}
	e.step("cordoned %s", node.Name)
	if err := drain.RunNodeDrain(helper, node.Name); err != nil {
		return err
	}
	e.step("drained %s", node.Name)
	return nil
}

func (e *Enroller) revoke(ctx context.Context, rec *site.NodeRecord) error {
	if rec.VPN == vpn.WireGuard {
		e.step("removed %s's WireGuard key from the hub's peer list; its live session goes on until the hub applies it: run `kubectl stage hub-config --dir HUB_DIR` on the hub (it removes the peer from the live interface)", rec.Name)
		return nil
	}
	ca, err := e.Store.VPNCA(ctx)
	if err != nil {
		return err
	}
	if err := e.Store.RevokeCertificate(ctx, ca, rec.CertificateSerial, e.Now()); err != nil {
		return err
	}
	e.step("revoked %s's VPN certificate (serial %s) in the CRL; its live session goes on until the hub applies it: run `kubectl stage hub-config --dir HUB_DIR` on the hub (it ends the session through the hub's management socket)", rec.Name, rec.CertificateSerial)
	return nil
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
