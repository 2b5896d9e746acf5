package rollout

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// TemplateFromManifest reads a Deployment, StatefulSet or DaemonSet
// manifest and returns its pod template and its TYPE/NAME.
func TemplateFromManifest(data []byte) (*corev1.PodTemplateSpec, string, error) {
	obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(data, nil, nil)
	if err != nil {
		return nil, "", fmt.Errorf("the manifest is not a Kubernetes object: %w", err)
	}
	switch w := obj.(type) {
	case *appsv1.Deployment:
		return &w.Spec.Template, "deployment/" + w.Name, nil
	case *appsv1.StatefulSet:
		return &w.Spec.Template, "statefulset/" + w.Name, nil
	case *appsv1.DaemonSet:
		return &w.Spec.Template, "daemonset/" + w.Name, nil
	default:
		return nil, "", fmt.Errorf("the manifest holds a %s; rollout takes one apps/v1 Deployment, StatefulSet or DaemonSet", gvk.Kind)
	}
}
