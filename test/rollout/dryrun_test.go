package rollout_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// TestRolloutDryRunPersistsNothing: rollout --dry-run=client and =server
// plan the waves and change neither the StatefulSet nor a pod; a template
// the API server refuses passes the client dry run and is refused by the
// server dry run, with the API server's own message.
func TestRolloutDryRunPersistsNothing(t *testing.T) {
	ctx := context.Background()
	cp := cluster(t, sites)
	deployStatefulSet(t, cp)
	original, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods := func() string {
		var uids []string
		for site, list := range podsBySite(t, cp, "node") {
			for _, p := range list {
				uids = append(uids, site+"/"+p.Name+"/"+string(p.UID))
			}
		}
		slices.Sort(uids)
		return strings.Join(uids, " ")
	}
	podsBefore := pods()
	unchanged := func(what string) {
		t.Helper()
		sts, err := cp.Client.AppsV1().StatefulSets(namespace).Get(ctx, "node", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// What a rollout writes: the spec (generation), the state and
		// history annotations, labels. The StatefulSet controller may still
		// be updating the status meanwhile, so the resourceVersion may move.
		if sts.Generation != original.Generation || !equality.Semantic.DeepEqual(sts.Spec, original.Spec) ||
			!maps.Equal(sts.Annotations, original.Annotations) || !maps.Equal(sts.Labels, original.Labels) {
			t.Errorf("%s changed the StatefulSet: generation %d -> %d, annotations %v -> %v", what, original.Generation, sts.Generation, original.Annotations, sts.Annotations)
		}
		if after := pods(); after != podsBefore {
			t.Errorf("%s replaced pods:\nbefore %s\nafter  %s", what, podsBefore, after)
		}
	}

	for mode, suffix := range map[string]string{"client": "(dry run)", "server": "(server dry run)"} {
		out, errOut, err := stage(ctx, t, cp, "rollout", "sts/node", "--image", "p2p:v2", "--waves", "canary,rest", "--dry-run="+mode)
		if err != nil {
			t.Fatalf("rollout --dry-run=%s: %v\n%s", mode, err, errOut)
		}
		if want := "statefulset/node revision 2: Progressing " + suffix + "\n"; !strings.HasPrefix(out, want) {
			t.Errorf("rollout --dry-run=%s printed:\n%s\nwant it to start with %q", mode, out, want)
		}
		if !strings.Contains(errOut, "rolling statefulset/node out to revision 2 (node=p2p:v2) in 3 waves: [site-a] → [site-b] → [site-c] "+suffix) {
			t.Errorf("rollout --dry-run=%s does not show its plan:\n%s", mode, errOut)
		}
		unchanged("rollout --dry-run=" + mode)
	}

	// A negative CPU limit: only the API server's validation knows.
	bad := original.DeepCopy()
	bad.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"}
	bad.ObjectMeta = metav1.ObjectMeta{Name: "node", Namespace: namespace}
	bad.Spec.Template.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("-1")}
	data, err := yaml.Marshal(bad)
	if err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(manifest, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := stage(ctx, t, cp, "rollout", "-f", manifest, "--dry-run=client"); err != nil {
		t.Fatalf("rollout -f %s --dry-run=client: %v\n%s", manifest, err, errOut)
	}
	_, _, err = stage(ctx, t, cp, "rollout", "-f", manifest, "--dry-run=server")
	if err == nil || !strings.Contains(err.Error(), "must be greater than or equal to 0") {
		t.Fatalf("rollout -f %s --dry-run=server: error %v, want the API server's validation error", manifest, err)
	}
	unchanged("the refused server dry run")
}
