package enroll

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"
	"k8s.io/kubectl/pkg/drain"

	"github.com/kubectl-stage/kubectl-stage/pkg/access"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/input"
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
		// The drain helper follows the dry-run strategy itself: under client
		// it only lists the pods it would evict, under server it sends the
		// cordon and the evictions with dryRun=All and does not wait.
		if err := e.drain(ctx, node, o); err != nil {
			return input.Fix(fmt.Errorf("draining %s: %w; nothing else was changed: fix the cause (a PodDisruptionBudget, or a pod without controller, which only evicting unmanaged pods removes) and re-run `kubectl stage leave %s`", o.Node, err, o.Node),
				input.Use(InputForce))
		}
	}
	for _, st := range e.leaveSteps(rec, enrolled, nodeExists, o.Node) {
		if e.DryRun != kcmdutil.DryRunClient {
			if err := st.do(ctx); err != nil {
				return fmt.Errorf("%s: %w; re-run `kubectl stage leave %s` to finish", st.failing, err, o.Node)
			}
		}
		if st.done != "" {
			e.step("%s", st.done)
		}
	}
	return nil
}

// leaveStep is one write of a leave: what it does, how its failure reads,
// and the line that reports it (empty: none).
type leaveStep struct {
	do      func(context.Context) error
	failing string
	done    string
}

// leaveSteps lists the writes after the drain, in the order that lets a
// re-run finish a failed leave: the record goes last.
func (e *Enroller) leaveSteps(rec *site.NodeRecord, enrolled, nodeExists bool, name string) []leaveStep {
	var steps []leaveStep
	if enrolled {
		token := bootstraputil.BootstrapTokenSecretName(rec.TokenID)
		steps = append(steps, e.revokeStep(rec), leaveStep{
			do: func(ctx context.Context) error {
				return ignoreNotFound(e.Client.CoreV1().Secrets(metav1.NamespaceSystem).Delete(ctx, token, metav1.DeleteOptions{}))
			},
			failing: "deleting bootstrap token kube-system/" + token,
			done:    "deleted bootstrap token " + rec.TokenID,
		})
	}
	if nodeExists {
		steps = append(steps, leaveStep{
			do: func(ctx context.Context) error {
				return ignoreNotFound(e.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{}))
			},
			failing: "deleting node " + name,
			done:    "deleted node " + name,
		})
	}
	record := leaveStep{
		do:      func(ctx context.Context) error { return e.Store.DeleteNode(ctx, name) },
		failing: "deleting the record of " + name,
	}
	if enrolled {
		record.done = fmt.Sprintf("released overlay IP %s; %s has left site %s", rec.OverlayIP, name, rec.Site)
	}
	return append(steps, leaveStep{
		do:      func(ctx context.Context) error { return e.Store.ReleaseIP(ctx, name) },
		failing: "releasing the overlay address of " + name,
	}, record)
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
		DryRunStrategy:      e.DryRun,
		Out:                 out,
		ErrOut:              out,
	}
	if e.DryRun == kcmdutil.DryRunClient {
		// As kubectl drain --dry-run=client: find what would be evicted
		// (an unmanaged pod without force fails here too), evict nothing.
		list, errs := helper.GetPodsForDeletion(node.Name)
		if errs != nil {
			return utilerrors.NewAggregate(errs)
		}
		e.step("cordoned %s", node.Name)
		for _, pod := range list.Pods() {
			e.step("evicting pod %s/%s", pod.Namespace, pod.Name)
		}
		e.step("drained %s", node.Name)
		return nil
	}
	// Under a server dry run the client sends the cordon with dryRun=All,
	// and the helper evicts with dryRun=All without waiting for deletions.
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

// revokeStep revokes a node's VPN credentials: WireGuard keys are only
// dropped from the hub's peer list (which is built from the records), an
// OpenVPN certificate goes into the CRL.
func (e *Enroller) revokeStep(rec *site.NodeRecord) leaveStep {
	st := leaveStep{failing: "revoking the VPN credentials of " + rec.Name}
	if rec.VPN == vpn.WireGuard {
		st.do = func(context.Context) error { return nil }
		st.done = fmt.Sprintf("removed %s's WireGuard key from the hub's peer list; its live session goes on until the hub applies it: run `kubectl stage hub-config` on the hub (it removes the peer from the live interface)", rec.Name)
		return st
	}
	st.do = func(ctx context.Context) error {
		ca, err := e.Store.VPNCA(ctx)
		if err != nil {
			return err
		}
		return e.Store.RevokeCertificate(ctx, ca, rec.CertificateSerial, e.Now())
	}
	st.done = fmt.Sprintf("revoked %s's VPN certificate (serial %s) in the CRL; its live session goes on until the hub applies it: run `kubectl stage hub-config` on the hub (it ends the session through the hub's management socket)", rec.Name, rec.CertificateSerial)
	return st
}

type nopWriter struct{}

func (nopWriter) Write(p []byte) (int, error) { return len(p), nil }
