// Package printing gives printed objects their apiVersion and kind, the
// way kubectl prints them, for every command and record of kubectl-stage.
package printing

import (
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

// Scheme knows the Kubernetes types and kubectl-stage.io/v1alpha1.
var Scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// SetKinds sets obj's apiVersion and kind from its Go type, and each item's
// when it is a list, as in kubectl's lists, so that an item taken out of
// the list (jq '.items[0]') stands alone.
func SetKinds(obj runtime.Object) error {
	kinds, _, err := Scheme.ObjectKinds(obj)
	if err != nil {
		return err
	}
	obj.GetObjectKind().SetGroupVersionKind(kinds[0])
	if !meta.IsListType(obj) {
		return nil
	}
	items, err := meta.ExtractList(obj)
	if err != nil {
		return err
	}
	for _, item := range items {
		kinds, _, err := Scheme.ObjectKinds(item)
		if err != nil {
			return err
		}
		// ExtractList gives pointers into the list: this sets the item's.
		item.GetObjectKind().SetGroupVersionKind(kinds[0])
	}
	return nil
}
