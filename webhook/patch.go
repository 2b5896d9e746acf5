package webhook

import (
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// podPatch is the JSON patch from original to mutated, written from the
// fields pkg/mutate changes (labels, annotations, affinity, topology spread
// constraints, the containers' env) instead of diffing the two pods'
// JSON, which took half of each admission's time. "add" on an object member
// that exists replaces it (RFC 6902), so every operation is an add. A
// change elsewhere is a bug of the mutation, which FuzzAdmissionReview
// catches: the patched pod would be patched again.
func podPatch(original, mutated *corev1.Pod) []jsonpatch.JsonPatchOperation {
	var ops []jsonpatch.JsonPatchOperation
	ops = append(ops, mapPatch("/metadata/labels", original.Labels, mutated.Labels)...)
	ops = append(ops, mapPatch("/metadata/annotations", original.Annotations, mutated.Annotations)...)
	if !equality.Semantic.DeepEqual(original.Spec.Affinity, mutated.Spec.Affinity) {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/affinity", mutated.Spec.Affinity))
	}
	if !equality.Semantic.DeepEqual(original.Spec.TopologySpreadConstraints, mutated.Spec.TopologySpreadConstraints) {
		ops = append(ops, jsonpatch.NewOperation("add", "/spec/topologySpreadConstraints", mutated.Spec.TopologySpreadConstraints))
	}
	for _, list := range []struct {
		path      string
		old, want []corev1.Container
	}{
		{"/spec/initContainers/", original.Spec.InitContainers, mutated.Spec.InitContainers},
		{"/spec/containers/", original.Spec.Containers, mutated.Spec.Containers},
	} {
		if len(list.old) != len(list.want) {
			// Never done by the mutation; the whole list then.
			ops = append(ops, jsonpatch.NewOperation("add", strings.TrimSuffix(list.path, "/"), list.want))
			continue
		}
		for i := range list.want {
			if !equality.Semantic.DeepEqual(list.old[i].Env, list.want[i].Env) {
				ops = append(ops, jsonpatch.NewOperation("add", list.path+strconv.Itoa(i)+"/env", list.want[i].Env))
			}
		}
	}
	// A stable order makes responses comparable and logs readable.
	slices.SortFunc(ops, func(a, b jsonpatch.JsonPatchOperation) int { return strings.Compare(a.Path, b.Path) })
	return ops
}

// mapPatch adds the keys of want that old lacks or has otherwise, or the
// whole map where old is empty (its serialization omits the member).
func mapPatch(path string, old, want map[string]string) []jsonpatch.JsonPatchOperation {
	if len(old) == 0 {
		if len(want) == 0 {
			return nil
		}
		return []jsonpatch.JsonPatchOperation{jsonpatch.NewOperation("add", path, want)}
	}
	var ops []jsonpatch.JsonPatchOperation
	for k, v := range want {
		if was, ok := old[k]; !ok || was != v {
			ops = append(ops, jsonpatch.NewOperation("add", path+"/"+escapePointer(k), v))
		}
	}
	for k := range old {
		if _, ok := want[k]; !ok {
			ops = append(ops, jsonpatch.NewOperation("remove", path+"/"+escapePointer(k), nil))
		}
	}
	return ops
}

// escapePointer escapes a JSON pointer's reference token (RFC 6901).
func escapePointer(token string) string {
	return strings.ReplaceAll(strings.ReplaceAll(token, "~", "~0"), "/", "~1")
}
