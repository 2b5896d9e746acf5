package site

import (
	"context"
	"encoding/json"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
)

// NetConditions is the stored network conditions document and its
// resourceVersion; an empty document and "" when none is stored.
func (s *Store) NetConditions(ctx context.Context) (*netcond.Document, string, error) {
	cm, err := s.configMaps().Get(ctx, netcond.ConfigMapName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return DecodeNetConditions(nil)
	}
	if err != nil {
		return nil, "", err
	}
	return DecodeNetConditions(cm)
}

// DecodeNetConditions is the document stored in cm (the ConfigMap
// netcond.ConfigMapName, from the API server or a cache) and its
// resourceVersion; nil (none stored) is an empty document and "".
func DecodeNetConditions(cm *corev1.ConfigMap) (*netcond.Document, string, error) {
	if cm == nil {
		return netcond.New(), "", nil
	}
	doc, err := netcond.Parse([]byte(cm.Data[netcond.DocumentKey]))
	if err != nil {
		return nil, "", fmt.Errorf("configmap %s/%s: %w; replace it with `kubectl stage net apply -f FILE` or remove it with `kubectl stage net reset`", cm.Namespace, cm.Name, err)
	}
	return doc, cm.ResourceVersion, nil
}

// SaveNetConditions stores doc over the version read ("" when none was):
// a change made meanwhile by someone else is refused, not overwritten. It
// returns the new version.
func (s *Store) SaveNetConditions(ctx context.Context, doc *netcond.Document, version string) (string, error) {
	data, err := yaml.Marshal(doc)
	if err != nil {
		return "", err
	}
	cm := &corev1.ConfigMap{ObjectMeta: s.meta(netcond.ConfigMapName, nil), Data: map[string]string{netcond.DocumentKey: string(data)}}
	var saved *corev1.ConfigMap
	if version == "" {
		saved, err = s.configMaps().Create(ctx, cm, metav1.CreateOptions{})
	} else {
		cm.ResourceVersion = version
		saved, err = s.configMaps().Update(ctx, cm, metav1.UpdateOptions{})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return "", fmt.Errorf("the network conditions changed while this command ran: run it again (kubectl stage net shows the current ones)")
	}
	if err != nil {
		return "", err
	}
	return saved.ResourceVersion, nil
}

// DeleteNetConditions removes the stored conditions; none stored is fine.
func (s *Store) DeleteNetConditions(ctx context.Context) (deleted bool, err error) {
	err = s.configMaps().Delete(ctx, netcond.ConfigMapName, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// NetStatusOf is what node's agent published on it (the annotation
// api.AnnotationNetStatus); nil when it published nothing.
func NetStatusOf(node *corev1.Node) (*netcond.Status, error) {
	raw, ok := node.Annotations[api.AnnotationNetStatus]
	if !ok {
		return nil, nil
	}
	st := &netcond.Status{}
	if err := json.Unmarshal([]byte(raw), st); err != nil {
		return nil, fmt.Errorf("node %s: annotation %s is not a status (%v)", node.Name, api.AnnotationNetStatus, err)
	}
	return st, nil
}
