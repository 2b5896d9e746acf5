// Package access checks, before a command writes anything, that the user
// may do everything the command will do, so that a missing RBAC permission
// is reported up front (verb, resource, namespace) instead of halfway.
package access

import (
	"context"
	"fmt"
	"strings"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Rule is one permission a command needs.
type Rule struct {
	Verb        string
	Group       string
	Resource    string
	Subresource string
	Namespace   string
}

// kind is the resource as kubectl names it: "pods", "deployments.apps".
func (r Rule) kind() string {
	if r.Group == "" {
		return r.Resource
	}
	return r.Resource + "." + r.Group
}

// resource is kind with the subresource: "pods/log".
func (r Rule) resource() string {
	if r.Subresource == "" {
		return r.kind()
	}
	return r.kind() + "/" + r.Subresource
}

func (r Rule) String() string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s %s (cluster-wide)", r.Verb, r.resource())
	}
	return fmt.Sprintf("%s %s in namespace %s", r.Verb, r.resource(), r.Namespace)
}

// canI is the kubectl command that checks the rule.
func (r Rule) canI() string {
	cmd := fmt.Sprintf("kubectl auth can-i %s %s", r.Verb, r.kind())
	if r.Subresource != "" {
		cmd += " --subresource=" + r.Subresource
	}
	if r.Namespace != "" {
		cmd += " -n " + r.Namespace
	}
	return cmd
}

// Check asks the API server (SelfSubjectAccessReview) about every rule and
// returns one error naming all that are denied, before a command writes.
func Check(ctx context.Context, client kubernetes.Interface, action string, rules []Rule) error {
	return check(ctx, client, action, "; nothing was changed", rules)
}

// CheckRead is Check for a command that only reads.
func CheckRead(ctx context.Context, client kubernetes.Interface, action string, rules []Rule) error {
	return check(ctx, client, action, "", rules)
}

func check(ctx context.Context, client kubernetes.Interface, action, unchanged string, rules []Rule) error {
	var denied []Rule
	for _, r := range rules {
		review := &authorizationv1.SelfSubjectAccessReview{
			Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Verb: r.Verb, Group: r.Group, Resource: r.Resource, Subresource: r.Subresource, Namespace: r.Namespace,
				},
			},
		}
		got, err := client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("checking permissions for %s: %w", action, err)
		}
		if !got.Status.Allowed {
			denied = append(denied, r)
		}
	}
	if len(denied) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "missing permission to %s%s. You may not:", action, unchanged)
	for _, r := range denied {
		fmt.Fprintf(&b, "\n  - %s   (check: %s)", r, r.canI())
	}
	b.WriteString("\nask a cluster administrator to grant these verbs (for example through a ClusterRole bound to you), or use a kubeconfig context that has them")
	return fmt.Errorf("%s", b.String())
}
