package chart

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// checkNetAgentMayPatchOnlyItsNode: with the chart's RBAC and admission
// policy applied to a real API server, an agent pod's token (bound to a pod
// on a-1) may set a-1's status annotation, and nothing else: not another
// annotation or label of a-1, not b-1, and no Secret.
func checkNetAgentMayPatchOnlyItsNode(t *testing.T, ctx context.Context, cp *harness.ControlPlane) {
	t.Helper()
	for _, name := range []string{"a-1", "b-1"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{api.LabelSite: name[:1]}}}
		if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const serviceAccount = "stage-kubectl-stage-net-agent"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "net-agent-a", Namespace: namespace}, Spec: corev1.PodSpec{
		ServiceAccountName: serviceAccount, NodeName: "a-1", Containers: []corev1.Container{{Name: "net-agent", Image: "ghcr.io/kubectl-stage/kubectl-stage-agent:v0.1.0"}}}}
	pod, err := cp.Client.CoreV1().Pods(namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The token the kubelet mounts in that pod: bound to it, naming its node.
	cfg, err := cp.ServiceAccountConfig(ctx, namespace, serviceAccount, 10*time.Minute, pod)
	if err != nil {
		t.Fatal(err)
	}
	agent, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	annotate := func(node, key, value string) error {
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{key: value}}})
		_, err := agent.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}

	// The policy is enforced once the API server has loaded it.
	var last error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		last = annotate("b-1", api.AnnotationNetStatus, "{}")
		if apierrors.IsInvalid(last) || apierrors.IsForbidden(last) && strings.Contains(last.Error(), "ValidatingAdmissionPolicy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the policy is not enforced after 30s: patching b-1's status from a-1's pod: %v", last)
		}
		// Undo what the not yet enforced policy let through.
		if last != nil {
			continue
		}
		if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, "b-1", types.JSONPatchType, []byte(`[{"op":"remove","path":"/metadata/annotations"}]`), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !strings.Contains(last.Error(), "the node agent may change only the Node its pod runs on") {
		t.Errorf("patching b-1 from a-1's pod: %v", last)
	}
	if err := annotate("a-1", api.AnnotationNetStatus, `{"site":"a"}`); err != nil {
		t.Errorf("the agent on a-1 cannot publish its status: %v", err)
	}
	if err := annotate("a-1", "example.com/other", "x"); err == nil || !strings.Contains(err.Error(), "the node agent may change only the annotation kubectl-stage.io/net-status of its Node") {
		t.Errorf("another annotation of a-1: %v", err)
	}
	labels, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{api.LabelSite: "b"}}})
	if _, err := agent.CoreV1().Nodes().Patch(ctx, "a-1", types.MergePatchType, labels, metav1.PatchOptions{}); err == nil || !strings.Contains(err.Error(), "may change only the annotation") {
		t.Errorf("moving a-1 to another site: %v", err)
	}
	if _, err := agent.CoreV1().Secrets(namespace).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("the agent lists Secrets: %v", err)
	}
	if _, err := agent.CoreV1().ConfigMaps(api.SystemNamespace).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("the agent cannot read the staging ConfigMaps: %v", err)
	}
	node, err := cp.Client.CoreV1().Nodes().Get(ctx, "a-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := node.Annotations; len(got) != 1 || got[api.AnnotationNetStatus] != `{"site":"a"}` || node.Labels[api.LabelSite] != "a" {
		t.Errorf("a-1 after the agent's patches: annotations %v, labels %v", got, node.Labels)
	}
}
