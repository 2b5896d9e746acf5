package rollout

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
)

// Kinds the rollout understands, with the short names kubectl accepts.
const (
	KindDeployment  = "Deployment"
	KindStatefulSet = "StatefulSet"
	KindDaemonSet   = "DaemonSet"
)

var kindAliases = map[string]string{
	"deployment": KindDeployment, "deployments": KindDeployment, "deploy": KindDeployment, "deployment.apps": KindDeployment,
	"statefulset": KindStatefulSet, "statefulsets": KindStatefulSet, "sts": KindStatefulSet, "statefulset.apps": KindStatefulSet,
	"daemonset": KindDaemonSet, "daemonsets": KindDaemonSet, "ds": KindDaemonSet, "daemonset.apps": KindDaemonSet,
}

// Ref names the app's workload; an empty Kind is looked up by name.
type Ref struct {
	Kind      string
	Name      string
	Namespace string
}

func (r Ref) String() string { return strings.ToLower(r.Kind) + "/" + r.Name }

// ParseRef reads APP as NAME or TYPE/NAME (deploy/web, sts/node, ds/agent).
func ParseRef(arg, namespace string) (Ref, error) {
	typ, name, typed := strings.Cut(arg, "/")
	if !typed {
		return Ref{Name: arg, Namespace: namespace}, nil
	}
	kind, ok := KindOf(typ)
	if !ok || name == "" {
		return Ref{}, fmt.Errorf("%q: rollout handles deployment/NAME, statefulset/NAME and daemonset/NAME", arg)
	}
	return Ref{Kind: kind, Name: name, Namespace: namespace}, nil
}

// KindOf is the kind a TYPE names as kubectl spells it (deploy, sts,
// daemonsets, statefulset.apps...); ok is false for other kinds.
func KindOf(typ string) (kind string, ok bool) {
	kind, ok = kindAliases[strings.ToLower(typ)]
	return kind, ok
}

// workload is what the rollout needs of each kind. Methods that change the
// object do so in memory; Roller.commit writes them with the state.
type workload interface {
	ref() Ref
	meta() *metav1.ObjectMeta
	selector() *metav1.LabelSelector
	// template is the pod template the workload itself holds.
	template() *corev1.PodTemplateSpec
	get(ctx context.Context) error
	update(ctx context.Context) error
	// setTarget makes the workload hold the target revision without
	// replacing any pod by itself.
	setTarget(target *corev1.PodTemplateSpec, state *State) error
	// moveSite starts the site's move to the target revision; the pods it
	// replaces are recorded in loc.Placed.
	moveSite(ctx context.Context, site string, target *corev1.PodTemplateSpec, state *State, at *SitePods, loc Locator) error
	// addsPods is true when moveSite adds the new pods beside the old ones
	// instead of replacing them; retireOld removes the old ones once the
	// new ones are Ready.
	addsPods() bool
	retireOld(ctx context.Context, at *SitePods) error
	// restore hands the workload back to its own controller.
	restore(target *corev1.PodTemplateSpec, state *State) error
	// informer watches this one workload (the factory is scoped to it).
	informer(f informers.SharedInformerFactory) cache.SharedIndexInformer
}

func newWorkload(ctx context.Context, client kubernetes.Interface, ref Ref) (workload, error) {
	candidates := []workload{
		&statefulSet{podReplacer: podReplacer{client}, ns: ref.Namespace, name: ref.Name},
		&daemonSet{podReplacer: podReplacer{client}, ns: ref.Namespace, name: ref.Name},
		&deployment{client: client, ns: ref.Namespace, name: ref.Name},
	}
	var found []workload
	for _, w := range candidates {
		if ref.Kind != "" && w.ref().Kind != ref.Kind {
			continue
		}
		err := w.get(ctx)
		switch {
		case err == nil:
			found = append(found, w)
		case apierrors.IsNotFound(err):
		default:
			return nil, err
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		what := ref.Name
		if ref.Kind != "" {
			what = ref.String()
		}
		return nil, fmt.Errorf("no Deployment, StatefulSet or DaemonSet %s in namespace %s; check the name and -n", what, ref.Namespace)
	default:
		var names []string
		for _, w := range found {
			names = append(names, w.ref().String())
		}
		return nil, fmt.Errorf("%q is ambiguous: name one of %s", ref.Name, strings.Join(names, ", "))
	}
}

// deleteOutdated deletes the site's pods that do not run the target
// revision; their controller recreates them from the target template.
func deleteOutdated(ctx context.Context, client kubernetes.Interface, site string, at *SitePods, loc Locator) error {
	for _, pod := range at.Outdated {
		loc.Placed[pod.Name] = site
		uid := pod.UID
		err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("replacing pod %s at site %s: %w", pod.Name, site, err)
		}
	}
	return nil
}

// saveStrategy remembers the workload's own strategy the first time.
func saveStrategy(state *State, strategy any) error {
	if len(state.Strategy) > 0 {
		return nil
	}
	raw, err := json.Marshal(strategy)
	state.Strategy = raw
	return err
}

// restoreStrategy puts the remembered strategy back into strategy.
func restoreStrategy(state *State, strategy any) error {
	if len(state.Strategy) == 0 {
		return nil
	}
	if err := json.Unmarshal(state.Strategy, strategy); err != nil {
		return fmt.Errorf("the saved update strategy is unreadable: %w", err)
	}
	state.Strategy = nil
	return nil
}

// podReplacer is the OnDelete mechanism StatefulSets and DaemonSets share:
// a wave deletes its sites' outdated pods and the workload's controller
// recreates them from the target revision, in place.
type podReplacer struct {
	client kubernetes.Interface
}

func (r podReplacer) moveSite(ctx context.Context, site string, _ *corev1.PodTemplateSpec, _ *State, at *SitePods, loc Locator) error {
	return deleteOutdated(ctx, r.client, site, at, loc)
}

func (podReplacer) addsPods() bool { return false }

func (podReplacer) retireOld(context.Context, *SitePods) error { return nil }

type statefulSet struct {
	podReplacer
	ns, name string
	obj      *appsv1.StatefulSet
}

func (w *statefulSet) ref() Ref {
	return Ref{Kind: KindStatefulSet, Name: w.name, Namespace: w.ns}
}
func (w *statefulSet) meta() *metav1.ObjectMeta          { return &w.obj.ObjectMeta }
func (w *statefulSet) selector() *metav1.LabelSelector   { return w.obj.Spec.Selector }
func (w *statefulSet) template() *corev1.PodTemplateSpec { return &w.obj.Spec.Template }
func (w *statefulSet) get(ctx context.Context) (err error) {
	w.obj, err = w.client.AppsV1().StatefulSets(w.ns).Get(ctx, w.name, metav1.GetOptions{})
	return err
}
func (w *statefulSet) update(ctx context.Context) (err error) {
	w.obj, err = w.client.AppsV1().StatefulSets(w.ns).Update(ctx, w.obj, metav1.UpdateOptions{})
	return err
}
func (w *statefulSet) informer(f informers.SharedInformerFactory) cache.SharedIndexInformer {
	return f.Apps().V1().StatefulSets().Informer()
}
func (w *statefulSet) setTarget(target *corev1.PodTemplateSpec, state *State) error {
	if err := saveStrategy(state, w.obj.Spec.UpdateStrategy); err != nil {
		return err
	}
	w.obj.Spec.UpdateStrategy = appsv1.StatefulSetUpdateStrategy{Type: appsv1.OnDeleteStatefulSetStrategyType}
	w.obj.Spec.Template = *target.DeepCopy()
	return nil
}
func (w *statefulSet) restore(_ *corev1.PodTemplateSpec, state *State) error {
	return restoreStrategy(state, &w.obj.Spec.UpdateStrategy)
}

type daemonSet struct {
	podReplacer
	ns, name string
	obj      *appsv1.DaemonSet
}

func (w *daemonSet) ref() Ref                          { return Ref{Kind: KindDaemonSet, Name: w.name, Namespace: w.ns} }
func (w *daemonSet) meta() *metav1.ObjectMeta          { return &w.obj.ObjectMeta }
func (w *daemonSet) selector() *metav1.LabelSelector   { return w.obj.Spec.Selector }
func (w *daemonSet) template() *corev1.PodTemplateSpec { return &w.obj.Spec.Template }
func (w *daemonSet) get(ctx context.Context) (err error) {
	w.obj, err = w.client.AppsV1().DaemonSets(w.ns).Get(ctx, w.name, metav1.GetOptions{})
	return err
}
func (w *daemonSet) update(ctx context.Context) (err error) {
	w.obj, err = w.client.AppsV1().DaemonSets(w.ns).Update(ctx, w.obj, metav1.UpdateOptions{})
	return err
}
func (w *daemonSet) informer(f informers.SharedInformerFactory) cache.SharedIndexInformer {
	return f.Apps().V1().DaemonSets().Informer()
}
func (w *daemonSet) setTarget(target *corev1.PodTemplateSpec, state *State) error {
	if err := saveStrategy(state, w.obj.Spec.UpdateStrategy); err != nil {
		return err
	}
	w.obj.Spec.UpdateStrategy = appsv1.DaemonSetUpdateStrategy{Type: appsv1.OnDeleteDaemonSetStrategyType}
	w.obj.Spec.Template = *target.DeepCopy()
	return nil
}
func (w *daemonSet) restore(_ *corev1.PodTemplateSpec, state *State) error {
	return restoreStrategy(state, &w.obj.Spec.UpdateStrategy)
}

// deployment splits a Deployment into per-site Deployments as its waves go.
type deployment struct {
	client   kubernetes.Interface
	ns, name string
	obj      *appsv1.Deployment
}

func (w *deployment) ref() Ref                          { return Ref{Kind: KindDeployment, Name: w.name, Namespace: w.ns} }
func (w *deployment) meta() *metav1.ObjectMeta          { return &w.obj.ObjectMeta }
func (w *deployment) selector() *metav1.LabelSelector   { return w.obj.Spec.Selector }
func (w *deployment) template() *corev1.PodTemplateSpec { return &w.obj.Spec.Template }
func (w *deployment) get(ctx context.Context) (err error) {
	w.obj, err = w.client.AppsV1().Deployments(w.ns).Get(ctx, w.name, metav1.GetOptions{})
	return err
}
func (w *deployment) update(ctx context.Context) (err error) {
	w.obj, err = w.client.AppsV1().Deployments(w.ns).Update(ctx, w.obj, metav1.UpdateOptions{})
	return err
}

func (w *deployment) informer(f informers.SharedInformerFactory) cache.SharedIndexInformer {
	return f.Apps().V1().Deployments().Informer()
}

// setTarget leaves the original Deployment alone: its pods go site by site.
func (w *deployment) setTarget(*corev1.PodTemplateSpec, *State) error { return nil }

// SiteDeploymentName names the per-site Deployment of a site.
func SiteDeploymentName(name, site string) string { return name + "-" + site }

// moveSite creates or updates the site's own Deployment with the target
// template, pinned to the site.
func (w *deployment) moveSite(ctx context.Context, site string, target *corev1.PodTemplateSpec, state *State, _ *SitePods, _ Locator) error {
	deployments := w.client.AppsV1().Deployments(w.ns)
	name := SiteDeploymentName(w.name, site)
	tmpl := target.DeepCopy()
	if tmpl.Labels == nil {
		tmpl.Labels = map[string]string{}
	}
	tmpl.Labels[api.LabelSite] = site
	if tmpl.Spec.NodeSelector == nil {
		tmpl.Spec.NodeSelector = map[string]string{}
	}
	tmpl.Spec.NodeSelector[api.LabelSite] = site
	// The stage webhook refuses a pod pinned to one site while its sites
	// annotation asks for more (one-per-site over all sites, say): the site
	// Deployment's pods are the app's peers at that one site.
	if tmpl.Annotations == nil {
		tmpl.Annotations = map[string]string{}
	}
	tmpl.Annotations[api.AnnotationSites] = site

	existing, err := deployments.Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		if existing.Annotations[api.AnnotationSiteOf] != w.name {
			return fmt.Errorf("deployment %s exists but is not the site deployment of %s; rename it", name, w.name)
		}
		existing.Spec.Template = *tmpl
		_, err = deployments.Update(ctx, existing, metav1.UpdateOptions{})
		return err
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	selector := w.obj.Spec.Selector.DeepCopy()
	if selector.MatchLabels == nil {
		selector.MatchLabels = map[string]string{}
	}
	selector.MatchLabels[api.LabelSite] = site
	labels := map[string]string{api.LabelSite: site, api.LabelManagedBy: api.LabelManagedByValue}
	for k, v := range w.obj.Labels {
		labels[k] = v
	}
	replicas := int32(state.Desired[site])
	child := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   w.ns,
			Labels:      labels,
			Annotations: map[string]string{api.AnnotationSiteOf: w.name},
			// Deleting the app's Deployment deletes its site Deployments.
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "apps/v1", Kind: KindDeployment, Name: w.name, UID: w.obj.UID,
			}},
		},
		Spec: appsv1.DeploymentSpec{
			Replicas:        &replicas,
			Selector:        selector,
			Template:        *tmpl,
			Strategy:        w.obj.Spec.Strategy,
			MinReadySeconds: w.obj.Spec.MinReadySeconds,
		},
	}
	_, err = deployments.Create(ctx, child, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func (w *deployment) addsPods() bool { return true }

// retireOld scales the original Deployment down by its pods at the site,
// marking them so that its ReplicaSets delete exactly those.
func (w *deployment) retireOld(ctx context.Context, at *SitePods) error {
	if err := w.get(ctx); err != nil {
		return err
	}
	owned, err := w.ownedReplicaSets(ctx)
	if err != nil {
		return err
	}
	retired := int32(0)
	for _, pod := range at.Live() {
		ctrl := metav1.GetControllerOf(pod)
		if ctrl == nil || !owned[ctrl.UID] {
			continue
		}
		patch := []byte(`{"metadata":{"annotations":{"controller.kubernetes.io/pod-deletion-cost":"-1000000"}}}`)
		if _, err := w.client.CoreV1().Pods(w.ns).Patch(ctx, pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			return err
		}
		retired++
	}
	if retired == 0 {
		return nil
	}
	// The deployment controller writes the Deployment too (its status): on
	// a conflict, re-read it and retire the same pods from what it holds now.
	return conflict.Retry(ctx, "deployment "+w.ns+"/"+w.name, func() error {
		replicas := max(int32(0), *w.obj.Spec.Replicas-retired)
		w.obj.Spec.Replicas = &replicas
		err := w.update(ctx)
		if apierrors.IsConflict(err) {
			if getErr := w.get(ctx); getErr != nil {
				return getErr
			}
		}
		return err
	})
}

func (w *deployment) ownedReplicaSets(ctx context.Context) (map[types.UID]bool, error) {
	selector, err := metav1.LabelSelectorAsSelector(w.obj.Spec.Selector)
	if err != nil {
		return nil, err
	}
	list, err := w.client.AppsV1().ReplicaSets(w.ns).List(ctx, metav1.ListOptions{LabelSelector: selector.String()})
	if err != nil {
		return nil, err
	}
	owned := map[types.UID]bool{}
	for _, rs := range list.Items {
		if ctrl := metav1.GetControllerOf(&rs); ctrl != nil && ctrl.UID == w.obj.UID {
			owned[rs.UID] = true
		}
	}
	return owned, nil
}

// restore gives the original Deployment the target template, so that it
// shows the app's current spec; its replicas now live at the sites.
func (w *deployment) restore(target *corev1.PodTemplateSpec, _ *State) error {
	w.obj.Spec.Template = *target.DeepCopy()
	return nil
}
