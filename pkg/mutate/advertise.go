package mutate

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// checkAdvertisedAddress refuses a pod that its advertised address would
// not reach, and warns where peers could advertise the same address.
// STAGE_ADVERTISE_IP is the node's overlay IP, the one address other sites
// route to: it reaches a pod on the host network, or one given a hostPort
// (then the peer port must be that hostPort), and no other pod.
//
// A pod whose every container sets STAGE_ADVERTISE_IP itself advertises an
// address of its own choosing and is not checked.
func checkAdvertisedAddress(pod *corev1.Pod, cfg config) ([]string, error) {
	if len(pod.Spec.Containers) > 0 && !slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool {
		return !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == api.EnvAdvertiseIP })
	}) {
		return nil, nil
	}
	port := int32(cfg.port)
	if !pod.Spec.HostNetwork {
		if port != 0 && declaresPort(pod, func(p corev1.ContainerPort) bool { return p.HostPort == port }) {
			return nil, nil
		}
		fix := fmt.Sprintf("set spec.hostNetwork: true, or set annotation %s to the peer port and give a container that hostPort", api.AnnotationPort)
		if port != 0 {
			fix = fmt.Sprintf("set spec.hostNetwork: true, or give a container the hostPort %d (annotation %s)", port, api.AnnotationPort)
		}
		return nil, fmt.Errorf("%s is the node's overlay IP, which does not reach this pod: %s", api.EnvAdvertiseIP, fix)
	}
	if port == 0 {
		return []string{fmt.Sprintf("without annotation %s, peers on one node advertise the same address (the node's IP): set it to the peer port and declare that containerPort", api.AnnotationPort)}, nil
	}
	// On the host network a declared containerPort is a hostPort, which the
	// scheduler gives to one pod per node.
	if !declaresPort(pod, func(p corev1.ContainerPort) bool { return p.ContainerPort == port || p.HostPort == port }) {
		return []string{fmt.Sprintf("no container declares port %d (annotation %s): declare containerPort: %d so that the scheduler never puts two peers, and one address, on one node", port, api.AnnotationPort, port)}, nil
	}
	return nil, nil
}

func declaresPort(pod *corev1.Pod, match func(corev1.ContainerPort) bool) bool {
	return slices.ContainsFunc(pod.Spec.Containers, func(c corev1.Container) bool { return slices.ContainsFunc(c.Ports, match) })
}
