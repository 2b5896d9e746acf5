//go:build tools

// Package tools pins the Kubernetes commands built by `make tools`: the
// control plane the tests run, and the node components (kubelet, kubeadm)
// the real-node tests run. No kube-proxy: the sites have no pod network to
// route Services over (see README, "Real nodes").
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
