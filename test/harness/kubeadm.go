package harness

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// KubeadmBootstrap creates what `kubeadm init` leaves behind for joining
// nodes, so the harness cluster looks like a kubeadm one: the
// kube-public/cluster-info ConfigMap (CA and API server URL, which the
// bootstrapsigner controller signs for every token), anonymous read access to
// it, the node-bootstrapper role and CSR auto-approval for kubeadm's token
// group, and kube-system/kubeadm-config with the cluster's networking.
func (cp *ControlPlane) KubeadmBootstrap(ctx context.Context) error {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.Clusters[""] = &clientcmdapi.Cluster{Server: cp.apiServerURL, CertificateAuthorityData: cp.CA.CertificatePEM()}
	data, err := clientcmd.Write(*kubeconfig)
	if err != nil {
		return err
	}
	const group = "system:bootstrappers:kubeadm:default-node-token"
	objects := []func() error{
		func() error {
			_, err := cp.Client.CoreV1().ConfigMaps(metav1.NamespacePublic).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "cluster-info"},
				Data:       map[string]string{"kubeconfig": string(data)},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cp.Client.RbacV1().Roles(metav1.NamespacePublic).Create(ctx, &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo"},
				Rules:      []rbacv1.PolicyRule{{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: []string{"cluster-info"}}},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			_, err := cp.Client.RbacV1().RoleBindings(metav1.NamespacePublic).Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm:bootstrap-signer-clusterinfo"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "kubeadm:bootstrap-signer-clusterinfo"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "system:anonymous"}},
			}, metav1.CreateOptions{})
			return err
		},
		func() error {
			return cp.bindClusterRole(ctx, "kubeadm:get-nodes", "system:node-bootstrapper", group)
		},
		func() error {
			return cp.bindClusterRole(ctx, "kubeadm:node-autoapprove-bootstrap", "system:certificates.k8s.io:certificatesigningrequests:nodeclient", group)
		},
		func() error {
			_, err := cp.Client.CoreV1().ConfigMaps(metav1.NamespaceSystem).Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "kubeadm-config"},
				Data: map[string]string{"ClusterConfiguration": fmt.Sprintf(
					"apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nnetworking:\n  podSubnet: %s\n  serviceSubnet: %s\n", PodCIDR, ServiceCIDR)},
			}, metav1.CreateOptions{})
			return err
		},
	}
	for _, create := range objects {
		if err := create(); err != nil {
			return fmt.Errorf("creating kubeadm's bootstrap objects: %w", err)
		}
	}
	return nil
}

func (cp *ControlPlane) bindClusterRole(ctx context.Context, name, role, group string) error {
	_, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.GroupKind, Name: group}},
	}, metav1.CreateOptions{})
	return err
}
