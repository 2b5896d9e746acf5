package site

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
	"github.com/kubectl-stage/kubectl-stage/pkg/ipam"
)

// ErrNotInitialized means `kubectl stage init` has not run on this cluster.
var ErrNotInitialized = errors.New("kubectl-stage is not initialized in this cluster: run `kubectl stage init` first")

// ErrNodeEnrolled means a node of that name is enrolled already.
var ErrNodeEnrolled = errors.New("node already enrolled")

const (
	configKey = "config"
	recordKey = "record"
	ipamKey   = "allocations"
)

// configMapName names a ConfigMap of the store in contention messages.
func (s *Store) configMapName(name string) string {
	return "configmap " + s.Namespace + "/" + name
}

// Store reads and writes kubectl-stage's state in the cluster.
type Store struct {
	Client    kubernetes.Interface
	Namespace string
}

// NewStore uses the system namespace.
func NewStore(client kubernetes.Interface) *Store {
	return &Store{Client: client, Namespace: api.SystemNamespace}
}

func (s *Store) configMaps() typedcorev1.ConfigMapInterface {
	return s.Client.CoreV1().ConfigMaps(s.Namespace)
}

func (s *Store) meta(name string, labels map[string]string) metav1.ObjectMeta {
	l := map[string]string{api.LabelManagedBy: api.LabelManagedByValue}
	for k, v := range labels {
		l[k] = v
	}
	return metav1.ObjectMeta{Name: name, Namespace: s.Namespace, Labels: l}
}

// EnsureNamespace creates the system namespace if needed and reports
// whether it created it.
func (s *Store) EnsureNamespace(ctx context.Context) (created bool, err error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: s.Namespace, Labels: map[string]string{api.LabelManagedBy: api.LabelManagedByValue}}}
	_, err = s.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	return err == nil, err
}

// Config returns the staging configuration, or ErrNotInitialized.
func (s *Store) Config(ctx context.Context) (*Config, error) {
	cm, err := s.configMaps().Get(ctx, api.ConfigName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrNotInitialized
	}
	if err != nil {
		return nil, err
	}
	return DecodeConfig(cm)
}

// DecodeConfig reads and validates the configuration ConfigMap, as the
// Store and the agents' informers hold it.
func DecodeConfig(cm *corev1.ConfigMap) (*Config, error) {
	var c Config
	if err := json.Unmarshal([]byte(cm.Data[configKey]), &c); err != nil {
		return nil, fmt.Errorf("configmap %s/%s is corrupt: %w", cm.Namespace, cm.Name, err)
	}
	if err := c.Validate(); err != nil {
		return nil, &CorruptConfigError{Name: cm.Namespace + "/" + cm.Name, Config: &c, Err: err}
	}
	return &c, nil
}

// DecodeAllocations reads the overlay address table ConfigMap.
func DecodeAllocations(cm *corev1.ConfigMap) (ipam.Allocations, error) {
	table, err := ipam.Parse(cm.Data[ipamKey])
	if err != nil {
		return nil, fmt.Errorf("configmap %s/%s is corrupt: %w", cm.Namespace, cm.Name, err)
	}
	return table, nil
}

// DecodeNode reads and validates a node record ConfigMap.
func DecodeNode(cm *corev1.ConfigMap) (*NodeRecord, error) {
	rec := &NodeRecord{}
	if err := json.Unmarshal([]byte(cm.Data[recordKey]), rec); err != nil {
		return nil, fmt.Errorf("configmap %s/%s is corrupt: %w", cm.Namespace, cm.Name, err)
	}
	if err := rec.Validate(); err != nil {
		return nil, &CorruptRecordError{Namespace: cm.Namespace, Name: cm.Name, Err: err}
	}
	return rec, nil
}

// ConfigMap is the ConfigMap that stores c, as SaveConfig writes it.
func (s *Store) ConfigMap(c *Config) (*corev1.ConfigMap, error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{ObjectMeta: s.meta(api.ConfigName, nil), Data: map[string]string{configKey: string(data)}}, nil
}

// SaveConfig creates or replaces the staging configuration.
func (s *Store) SaveConfig(ctx context.Context, c *Config) error {
	want, err := s.ConfigMap(c)
	if err != nil {
		return err
	}
	return conflict.Retry(ctx, s.configMapName(api.ConfigName), func() error {
		cm, err := s.configMaps().Get(ctx, api.ConfigName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = s.configMaps().Create(ctx, want.DeepCopy(), metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), api.ConfigName, err)
			}
			return err
		}
		if err != nil {
			return err
		}
		cm.Data = want.Data
		_, err = s.configMaps().Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}

// Allocations returns the overlay address table.
func (s *Store) Allocations(ctx context.Context) (ipam.Allocations, error) {
	cm, err := s.configMaps().Get(ctx, api.IPAMName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return ipam.Allocations{}, nil
	}
	if err != nil {
		return nil, err
	}
	return ipam.Parse(cm.Data[ipamKey])
}

// updateAllocations applies change to the address table with optimistic
// concurrency: on a conflict it re-reads the table and applies change again.
func (s *Store) updateAllocations(ctx context.Context, change func(ipam.Allocations) error) error {
	return conflict.Retry(ctx, s.configMapName(api.IPAMName), func() error {
		cm, err := s.configMaps().Get(ctx, api.IPAMName, metav1.GetOptions{})
		create := apierrors.IsNotFound(err)
		if err != nil && !create {
			return err
		}
		if create {
			cm = &corev1.ConfigMap{ObjectMeta: s.meta(api.IPAMName, nil)}
		}
		table, err := ipam.Parse(cm.Data[ipamKey])
		if err != nil {
			return fmt.Errorf("configmap %s/%s is corrupt: %w", s.Namespace, api.IPAMName, err)
		}
		if err := change(table); err != nil {
			return err
		}
		cm.Data = map[string]string{ipamKey: table.Format()}
		if create {
			_, err = s.configMaps().Create(ctx, cm, metav1.CreateOptions{})
			if apierrors.IsAlreadyExists(err) {
				return apierrors.NewConflict(corev1.Resource("configmaps"), api.IPAMName, err)
			}
			return err
		}
		_, err = s.configMaps().Update(ctx, cm, metav1.UpdateOptions{})
		return err
	})
}

// AllocateIP reserves an overlay address for node. The address table is the
// authority on which nodes are enrolled, so a second enrollment of the same
// name fails here, atomically, with ErrNodeEnrolled.
func (s *Store) AllocateIP(ctx context.Context, pool *ipam.Pool, node string) (netip.Addr, error) {
	var ip netip.Addr
	err := s.updateAllocations(ctx, func(table ipam.Allocations) error {
		if held, ok := table.AddressOf(node); ok {
			return fmt.Errorf("%w: %q holds overlay address %s", ErrNodeEnrolled, node, held)
		}
		var err error
		ip, err = pool.Allocate(table, node)
		return err
	})
	return ip, err
}

// ReleaseIP frees node's address; releasing twice is not an error.
func (s *Store) ReleaseIP(ctx context.Context, node string) error {
	return s.updateAllocations(ctx, func(table ipam.Allocations) error {
		table.Release(node)
		return nil
	})
}

// CreateNode stores a node record.
func (s *Store) CreateNode(ctx context.Context, rec *NodeRecord) error {
	cm, err := recordConfigMap(s, api.NodePrefix+rec.Name, "node", rec.Site, rec)
	if err != nil {
		return err
	}
	_, err = s.configMaps().Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%w: record %s exists", ErrNodeEnrolled, cm.Name)
	}
	return err
}

// Node returns a node record; found is false when there is none.
func (s *Store) Node(ctx context.Context, name string) (rec *NodeRecord, found bool, err error) {
	cm, err := s.configMaps().Get(ctx, api.NodePrefix+name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rec = &NodeRecord{}
	if err := json.Unmarshal([]byte(cm.Data[recordKey]), rec); err != nil {
		return nil, false, fmt.Errorf("configmap %s/%s is corrupt: %w", s.Namespace, cm.Name, err)
	}
	if err := rec.Validate(); err != nil {
		return nil, false, &CorruptRecordError{Namespace: s.Namespace, Name: cm.Name, Err: err}
	}
	return rec, true, nil
}

// DeleteNode removes a node record; deleting twice is not an error.
func (s *Store) DeleteNode(ctx context.Context, name string) error {
	err := s.configMaps().Delete(ctx, api.NodePrefix+name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// Nodes lists node records, sorted by site then name.
func (s *Store) Nodes(ctx context.Context) ([]NodeRecord, error) {
	out, err := listRecords[NodeRecord](ctx, s, "node")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b NodeRecord) int {
		if c := strings.Compare(a.Site, b.Site); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// EnsureSite records a site the first time a node joins it.
func (s *Store) EnsureSite(ctx context.Context, name string, now time.Time) error {
	cm, err := recordConfigMap(s, api.SitePrefix+name, "site", name, &SiteRecord{Name: name, CreatedAt: now.UTC()})
	if err != nil {
		return err
	}
	_, err = s.configMaps().Create(ctx, cm, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// Sites lists the sites, sorted by name.
func (s *Store) Sites(ctx context.Context) ([]SiteRecord, error) {
	out, err := listRecords[SiteRecord](ctx, s, "site")
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b SiteRecord) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func recordConfigMap(s *Store, name, kind, site string, record any) (*corev1.ConfigMap, error) {
	data, err := json.MarshalIndent(record, "", "  ")
	if err != nil {
		return nil, err
	}
	return &corev1.ConfigMap{
		ObjectMeta: s.meta(name, map[string]string{api.LabelRecord: kind, api.LabelSite: site}),
		Data:       map[string]string{recordKey: string(data)},
	}, nil
}

// listRecords decodes every record ConfigMap of one kind.
func listRecords[T any](ctx context.Context, s *Store, kind string) ([]T, error) {
	list, err := s.configMaps().List(ctx, metav1.ListOptions{LabelSelector: api.LabelRecord + "=" + kind})
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(list.Items))
	for _, cm := range list.Items {
		var r T
		if err := json.Unmarshal([]byte(cm.Data[recordKey]), &r); err != nil {
			return nil, fmt.Errorf("configmap %s/%s is corrupt: %w", s.Namespace, cm.Name, err)
		}
		if v, ok := any(&r).(interface{ Validate() error }); ok {
			if err := v.Validate(); err != nil {
				return nil, &CorruptRecordError{Namespace: s.Namespace, Name: cm.Name, Err: err}
			}
		}
		out = append(out, r)
	}
	return out, nil
}
