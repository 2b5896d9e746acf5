package site

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// EnsureAgentAccess lets the node agents read the records with the
// credentials every node already has after kubeadm join (its kubelet's,
// group system:nodes): a Role that may get, list and watch the ConfigMaps
// of the system namespace (never a Secret), bound to that group. It
// reports whether it created either object; existing ones are kept.
func (s *Store) EnsureAgentAccess(ctx context.Context) (created bool, err error) {
	role := &rbacv1.Role{
		ObjectMeta: s.meta(api.AgentRoleName, nil),
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch"}}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: s.meta(api.AgentRoleName, nil),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: api.AgentRoleName},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: api.NodesGroup}},
	}
	_, err = s.Client.RbacV1().Roles(s.Namespace).Create(ctx, role, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return false, err
	}
	created = err == nil
	_, err = s.Client.RbacV1().RoleBindings(s.Namespace).Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return created, err
	}
	return created || err == nil, nil
}
