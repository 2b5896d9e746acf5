package harness

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

const (
	// kubeadm's bootstrap-token group and the group of every kubelet.
	bootstrapGroup = "system:bootstrappers:kubeadm:default-node-token"
	nodesGroup     = "system:nodes"
)

// kubeletConfiguration is the cluster-wide kubelet configuration kubeadm
// join writes to each node's /var/lib/kubelet/config.yaml. Per-machine
// settings (cgroupRoot) come from the node's kubeadm patches. Set for the
// machines tests run on: cgroup v1 allowed, cgroupfs as containerd's runc
// uses, swap tolerated, eviction thresholds low enough for small disks.
const kubeletConfiguration = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: /etc/kubernetes/pki/ca.crt
authorization:
  mode: Webhook
cgroupDriver: cgroupfs
clusterDNS:
- 10.96.0.10
clusterDomain: cluster.local
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
failCgroupV1: false
failSwapOn: false
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%
  nodefs.inodesFree: 1%
  imagefs.available: 1%
imageGCHighThresholdPercent: 100
rotateCertificates: true
staticPodPath: /etc/kubernetes/manifests
`

// KubeadmBootstrap creates what `kubeadm init` leaves behind for joining
// nodes, so the harness cluster looks like a kubeadm one: the
// kube-public/cluster-info ConfigMap (CA and API server URL, which the
// bootstrapsigner controller signs for every token), anonymous read access to
// it, the node-bootstrapper role, get on nodes and CSR auto-approval for
// kubeadm's token group, kube-system/kubeadm-config with the version and
// networking, and kube-system/kubelet-config with read access for joining
// nodes: everything a real `kubeadm join` reads (AdvertiseAt points
// cluster-info at the address nodes reach).
func (cp *ControlPlane) KubeadmBootstrap(ctx context.Context) error {
	objects := []func() error{
		func() error {
			data, err := cp.clusterInfo(cp.apiServerURL)
			if err != nil {
				return err
			}
			_, err = cp.Client.CoreV1().ConfigMaps(metav1.NamespacePublic).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "cluster-info"},
				Data:       map[string]string{"kubeconfig": data},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			return cp.configMapReader(ctx, metav1.NamespacePublic, "kubeadm:bootstrap-signer-clusterinfo", "cluster-info",
				rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:anonymous"})
		},
		func() error {
			return cp.bindClusterRole(ctx, "kubeadm:kubelet-bootstrap", "system:node-bootstrapper", bootstrapGroup)
		},
		func() error {
			_, err := cp.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:get-nodes"},
				Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}},
			}, metav1.CreateOptions{})
			if err != nil {
				return err
			}
			return cp.bindClusterRole(ctx, "kubeadm:get-nodes", "kubeadm:get-nodes", bootstrapGroup)
		},
		func() error {
			return cp.bindClusterRole(ctx, "kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", bootstrapGroup)
		},
		func() error {
			return cp.bindClusterRole(ctx, "kubeadm:node-autoapprove-certificate-rotation", "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", nodesGroup)
		},
		func() error {
			return cp.createConfigMap(ctx, "kubeadm-config", "ClusterConfiguration", cp.clusterConfiguration(""))
		},
		func() error {
			return cp.configMapReader(ctx, metav1.NamespaceSystem, "kubeadm:nodes-kubeadm-config", "kubeadm-config", groups(bootstrapGroup, nodesGroup)...)
		},
		func() error { return cp.createConfigMap(ctx, "kubelet-config", "kubelet", kubeletConfiguration) },
		func() error {
			return cp.configMapReader(ctx, metav1.NamespaceSystem, "kubeadm:kubelet-config", "kubelet-config", groups(bootstrapGroup, nodesGroup)...)
		},
	}
	for _, create := range objects {
		if err := create(); err != nil {
			return fmt.Errorf("creating kubeadm's bootstrap objects: %w", err)
		}
	}
	return nil
}

// AdvertiseAt makes kubeadm discovery send joining nodes to endpoint
// (host:port, e.g. the hub's overlay address): after discovery kubeadm
// talks to the server cluster-info names, not the one it was given.
func (cp *ControlPlane) AdvertiseAt(ctx context.Context, endpoint string) error {
	data, err := cp.clusterInfo("https://" + endpoint)
	if err != nil {
		return err
	}
	for name, update := range map[string]func(*corev1.ConfigMap){
		metav1.NamespacePublic + "/cluster-info": func(cm *corev1.ConfigMap) { cm.Data["kubeconfig"] = data },
		metav1.NamespaceSystem + "/kubeadm-config": func(cm *corev1.ConfigMap) {
			cm.Data["ClusterConfiguration"] = cp.clusterConfiguration(endpoint)
		},
	} {
		ns, cmName := splitName(name)
		cm, err := cp.Client.CoreV1().ConfigMaps(ns).Get(ctx, cmName, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("advertising %s: %w", endpoint, err)
		}
		update(cm)
		if _, err := cp.Client.CoreV1().ConfigMaps(ns).Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			return fmt.Errorf("advertising %s: %w", endpoint, err)
		}
	}
	return nil
}

func splitName(nsName string) (string, string) {
	ns, name, _ := strings.Cut(nsName, "/")
	return ns, name
}

func (cp *ControlPlane) clusterInfo(server string) (string, error) {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters[""] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: cp.CA.CertificatePEM()}
	data, err := clientcmd.Write(*kubeconfig)
	return string(data), err
}

// clusterConfiguration names the version, so that kubeadm never asks the
// internet for the latest stable one (a 10 s timeout per run here).
func (cp *ControlPlane) clusterConfiguration(endpoint string) string {
	cfg := fmt.Sprintf("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: %s\nnetworking:\n  dnsDomain: cluster.local\n  podSubnet: %s\n  serviceSubnet: %s\n",
		cp.Tools.KubernetesVersion, PodCIDR, ServiceCIDR)
	if endpoint != "" {
		cfg += "controlPlaneEndpoint: " + endpoint + "\n"
	}
	return cfg
}

func (cp *ControlPlane) createConfigMap(ctx context.Context, name, key, value string) error {
	_, err := cp.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       map[string]string{key: value},
	}, metav1.CreateOptions{})
	return err
}

// configMapReader lets subjects get one ConfigMap (a Role and RoleBinding
// named name, as kubeadm names them).
func (cp *ControlPlane) configMapReader(ctx context.Context, ns, name, configMap string, subjects ...rbacv1.Subject) error {
	_, err := cp.Client.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{configMap}}},
	}, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	_, err = cp.Client.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   subjects,
	}, metav1.CreateOptions{})
	return err
}

func groups(names ...string) []rbacv1.Subject {
	var subjects []rbacv1.Subject
	for _, n := range names {
		subjects = append(subjects, rbacv1.Subject{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: n})
	}
	return subjects
}

func (cp *ControlPlane) bindClusterRole(ctx context.Context, name, role, group string) error {
	_, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   groups(group),
	}, metav1.CreateOptions{})
	return err
}
