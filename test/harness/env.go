package harness

import (
	"regexp"

	corev1 "k8s.io/api/core/v1"
)

// EnvVar is one resolved environment variable of a container.
type EnvVar struct{ Name, Value string }

// EnvMap indexes resolved variables by name.
func EnvMap(env []EnvVar) map[string]string {
	m := map[string]string{}
	for _, e := range env {
		m[e.Name] = e.Value
	}
	return m
}

var reference = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// ResolveEnv computes a container's environment as the kubelet would: the
// downward-API fields the webhook uses are read from the pod, and $(VAR)
// refers to a variable defined earlier in the list.
func ResolveEnv(pod *corev1.Pod, c *corev1.Container) []EnvVar {
	var out []EnvVar
	defined := map[string]string{}
	for _, e := range c.Env {
		value := e.Value
		if e.ValueFrom != nil && e.ValueFrom.FieldRef != nil {
			value = fieldValue(pod, e.ValueFrom.FieldRef.FieldPath)
		} else {
			value = reference.ReplaceAllStringFunc(value, func(ref string) string {
				if v, ok := defined[ref[2:len(ref)-1]]; ok {
					return v
				}
				return ref
			})
		}
		defined[e.Name] = value
		out = append(out, EnvVar{Name: e.Name, Value: value})
	}
	return out
}

func fieldValue(pod *corev1.Pod, path string) string {
	switch path {
	case "status.hostIP":
		return pod.Status.HostIP
	case "status.podIP":
		return pod.Status.PodIP
	case "spec.nodeName":
		return pod.Spec.NodeName
	case "metadata.name":
		return pod.Name
	case "metadata.namespace":
		return pod.Namespace
	}
	if m := regexp.MustCompile(`^metadata\.labels\['(.+)'\]$`).FindStringSubmatch(path); m != nil {
		return pod.Labels[m[1]]
	}
	return ""
}
