package peerlogs

import (
	"context"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

// Target is what APP names: the peers of an app (the app label the stage
// webhook sets), or the pods of a workload (TYPE/NAME).
type Target struct {
	App string
	// Kind and Name name a workload when Kind is set.
	Kind string
	Name string
}

// ParseTarget reads APP as NAME (the app) or TYPE/NAME.
func ParseTarget(arg string) (Target, error) {
	typ, name, typed := strings.Cut(arg, "/")
	if !typed {
		if arg == "" {
			return Target{}, fmt.Errorf("APP is empty: give the app name or TYPE/NAME")
		}
		return Target{App: arg}, nil
	}
	kind, ok := rollout.KindOf(typ)
	if !ok || name == "" {
		return Target{}, fmt.Errorf("%q: logs reads APP (the app's name) or deployment/NAME, statefulset/NAME, daemonset/NAME", arg)
	}
	return Target{Kind: kind, Name: name}, nil
}

func (t Target) String() string {
	if t.Kind == "" {
		return fmt.Sprintf("app %q", t.App)
	}
	return strings.ToLower(t.Kind) + "/" + t.Name
}

// Selector is the label selector of the target's pods.
func (t Target) Selector(ctx context.Context, client kubernetes.Interface, namespace string) (labels.Selector, error) {
	if t.Kind == "" {
		return labels.SelectorFromSet(labels.Set{api.LabelApp: t.App}), nil
	}
	var ls *metav1.LabelSelector
	var err error
	apps := client.AppsV1()
	switch t.Kind {
	case rollout.KindDeployment:
		obj, getErr := apps.Deployments(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = getErr; err == nil {
			ls = obj.Spec.Selector
		}
	case rollout.KindStatefulSet:
		obj, getErr := apps.StatefulSets(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = getErr; err == nil {
			ls = obj.Spec.Selector
		}
	case rollout.KindDaemonSet:
		obj, getErr := apps.DaemonSets(namespace).Get(ctx, t.Name, metav1.GetOptions{})
		if err = getErr; err == nil {
			ls = obj.Spec.Selector
		}
	}
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("%s not found in namespace %q: check the name and -n", t, namespace)
	}
	if err != nil {
		return nil, err
	}
	sel, err := metav1.LabelSelectorAsSelector(ls)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t, err)
	}
	return sel, nil
}

// NoPodsError says that the target has no pods with a log, and how to fix it.
// sel is the target's selector.
func (t Target) NoPodsError(namespace string, sel labels.Selector, sites []string) error {
	where := ""
	switch len(sites) {
	case 0:
	case 1:
		where = " at site " + sites[0]
	default:
		where = " at sites " + strings.Join(sites, ", ")
	}
	how := "selector " + sel.String()
	if t.Kind == "" {
		how = "label " + sel.String()
	}
	msg := fmt.Sprintf("no running pods of %s in namespace %q%s (%s)", t, namespace, where, how)
	switch {
	case len(sites) > 0:
		return fmt.Errorf("%s: see where its pods run with kubectl stage sites -o wide", msg)
	case t.Kind == "":
		return fmt.Errorf("%s: check the app name and -n; the stage webhook sets %s on the pods it admits (opt in with %s=%s, then deploy or kubectl stage rollout the app)",
			msg, api.LabelApp, api.LabelInject, api.LabelInjectValue)
	default:
		return fmt.Errorf("%s: wait for its pods to start, or check them with kubectl get pods -l '%s'", msg, sel)
	}
}
