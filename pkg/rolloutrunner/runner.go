// Package rolloutrunner is the in-cluster rollout runner: a controller that
// drives every rollout whose state is stored on a Deployment, StatefulSet
// or DaemonSet and that no live runner holds. It is the same executor the
// CLI runs (rollout.Roller), under the same per-rollout lease, so a rollout
// started with --detach, or whose CLI died, goes on without a terminal, and
// a CLI and the controller (or two controller replicas) never both act.
package rolloutrunner

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/pkg/runlease"
)

// Runner drives the rollouts of one kind of workload.
type Runner struct {
	Client kubernetes.Interface
	Kind   string
	// Identity names this replica on the leases it holds (its pod name).
	Identity      string
	LeaseDuration time.Duration
	Log           logr.Logger

	// leases remembers the lease records this replica has seen, so that a
	// holder's lease expires by this replica's clock (runlease.Observed).
	// Each look at a held lease forgets the leases not looked at lately
	// (rollouts that ended or whose workload is gone), so it holds about
	// the rollouts this replica waits on, not every rollout it ever saw.
	leases runlease.Observed
	// ctx is the manager's: runs outlive the reconcile that started them.
	ctx     context.Context
	retry   chan event.TypedGenericEvent[client.Object]
	mu      sync.Mutex
	running map[types.NamespacedName]bool
	// waiting are the rollouts to look at again when their holder's lease
	// expires: one timer each, however many of its writes were seen.
	waiting map[types.NamespacedName]bool
}

// Setup registers a runner for each kind with the manager.
func Setup(mgr ctrl.Manager, clientset kubernetes.Interface, identity string, leaseDuration time.Duration) error {
	kinds := []struct {
		kind string
		obj  client.Object
	}{
		{rollout.KindDeployment, &appsv1.Deployment{}},
		{rollout.KindStatefulSet, &appsv1.StatefulSet{}},
		{rollout.KindDaemonSet, &appsv1.DaemonSet{}},
	}
	for _, k := range kinds {
		r := &Runner{Client: clientset, Kind: k.kind, Identity: identity, LeaseDuration: leaseDuration,
			Log:   mgr.GetLogger().WithName("rollout").WithValues("kind", k.kind),
			retry: make(chan event.TypedGenericEvent[client.Object]), running: map[types.NamespacedName]bool{}, waiting: map[types.NamespacedName]bool{}}
		// Only workloads with a rollout state concern the runner.
		hasRollout := predicate.NewPredicateFuncs(func(o client.Object) bool { return o.GetAnnotations()[api.AnnotationRollout] != "" })
		err := builder.ControllerManagedBy(mgr).Named("rollout-"+k.kind).
			For(k.obj, builder.WithPredicates(hasRollout)).
			WatchesRawSource(source.Channel(r.retry, &handler.EnqueueRequestForObject{})).
			Complete(r)
		if err != nil {
			return err
		}
		if err := mgr.Add(r); err != nil {
			return err
		}
	}
	return nil
}

// Start keeps the manager's context for the runs (manager.Runnable).
func (r *Runner) Start(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.mu.Unlock()
	<-ctx.Done()
	return nil
}

// Reconcile starts driving a rollout that needs a runner, unless this
// replica already drives it.
func (r *Runner) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r.mu.Lock()
	runCtx := r.ctx
	busy := r.running[req.NamespacedName]
	r.mu.Unlock()
	if busy || runCtx == nil {
		return reconcile.Result{}, nil
	}
	roller, err := rollout.New(ctx, r.Client, rollout.Ref{Kind: r.Kind, Name: req.Name, Namespace: req.Namespace}, io.Discard)
	if apierrors.IsNotFound(err) {
		return reconcile.Result{}, nil
	}
	if err != nil {
		return reconcile.Result{}, err
	}
	state, _, err := roller.State(ctx)
	if err != nil {
		// A state this runner cannot read (a newer version's) is left alone.
		r.Log.Error(err, "reading the rollout state", "workload", req.NamespacedName)
		return reconcile.Result{}, nil
	}
	if !rollout.NeedsRunner(state) {
		return reconcile.Result{}, nil
	}
	if state.Gates.HealthExec != "" {
		// The command was written for the machine that started the
		// rollout, and this image has no shell: a CLI must resume it.
		r.Log.Info("not driving a rollout with --health-exec; run kubectl stage rollout resume from a machine that has the command", "workload", req.NamespacedName)
		return reconcile.Result{}, nil
	}
	roller.Runner, roller.LeaseDuration, roller.Leases = r.Identity, r.LeaseDuration, &r.leases
	roller.Out = logWriter{r.Log.WithValues("workload", req.NamespacedName)}
	r.mu.Lock()
	r.running[req.NamespacedName] = true
	r.mu.Unlock()
	go r.drive(runCtx, req.NamespacedName, roller)
	return reconcile.Result{}, nil
}

// drive runs the rollout to its end; when another runner holds it, it is
// looked at again once that runner's lease would expire.
func (r *Runner) drive(ctx context.Context, key types.NamespacedName, roller *rollout.Roller) {
	defer func() {
		r.mu.Lock()
		delete(r.running, key)
		r.mu.Unlock()
	}()
	log := r.Log.WithValues("workload", key)
	res, err := roller.Continue(ctx)
	var held *runlease.HeldError
	switch {
	case errors.As(err, &held):
		log.V(1).Info("driven by another runner", "holder", held.Holder, "until", held.Until)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !r.waiting[key] {
			r.waiting[key] = true
			time.AfterFunc(time.Until(held.Until)+time.Second, func() {
				r.mu.Lock()
				delete(r.waiting, key)
				r.mu.Unlock()
				r.requeue(ctx, key)
			})
		}
	case errors.Is(err, rollout.ErrPaused):
		log.Info("paused")
	case err != nil:
		log.Error(err, "rollout stopped")
	default:
		log.Info("rollout ended", "phase", res.State.Phase, "revision", res.State.Revision)
	}
}

func (r *Runner) requeue(ctx context.Context, key types.NamespacedName) {
	obj := &appsv1.Deployment{}
	obj.Name, obj.Namespace = key.Name, key.Namespace
	select {
	case r.retry <- event.TypedGenericEvent[client.Object]{Object: obj}:
	case <-ctx.Done():
	}
}

// logWriter turns the executor's progress lines into log entries.
type logWriter struct{ log logr.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Info(string(trimNewline(p)))
	return len(p), nil
}

func trimNewline(p []byte) []byte {
	for len(p) > 0 && (p[len(p)-1] == '\n') {
		p = p[:len(p)-1]
	}
	return p
}
