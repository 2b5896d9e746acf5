// Package agent is the node agent's process: it watches kubectl-stage's
// state in the cluster through informers and keeps what it manages on its
// machine in step. Each thing it manages has its own package for the
// decision (pkg/mesh for the WireGuard peers) and a loop here.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/mesh"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Mesh keeps one WireGuard interface's peers as the enrolled nodes say:
// a node's interface (Node set) or the hub's (Hub set).
type Mesh struct {
	Client kubernetes.Interface
	// Records is the process's watch of kubectl-stage's ConfigMaps.
	Records *Records
	// Node is the node this agent runs on; Hub makes it the hub's agent.
	Node string
	Hub  bool
	// Applier configures the interface.
	Applier *mesh.Applier
	// Resync reconciles this often even without a change in the cluster,
	// which repairs a peer removed by hand.
	Resync time.Duration
	// Observe (hub only) is how often the hub reads where each node's
	// packets come from and publishes what changed, so that nodes reach an
	// --endpoint auto node at its current address.
	Observe time.Duration
	// Log receives one line per change and per error; never a private key.
	Log io.Writer

	// refused is the last refusals logged, so each is logged once.
	refused string
	// star is the non-mesh backend last logged ("" while a mesh), so the
	// idle line is logged once.
	star vpn.Backend
	// published is what the hub last published (nil: nothing yet).
	published map[string]string
}

// Run reconciles until ctx ends. While the API server cannot be reached
// the informers keep their last state, so the interface keeps its peers:
// a node cut off from the hub keeps its direct paths.
func (m *Mesh) Run(ctx context.Context) error {
	var observe <-chan time.Time
	if m.Hub {
		observeTicker := time.NewTicker(m.Observe)
		defer observeTicker.Stop()
		observe = observeTicker.C
	}
	return m.Records.Follow(ctx, m.Resync, observe, func(lister corelisters.ConfigMapNamespaceLister) {
		if err := m.reconcile(ctx, lister); err != nil {
			m.logf("not reconciled (the interface keeps its peers; retrying on the next change or in %s): %v", m.Resync, err)
		}
	})
}

// reconcile computes the peer set from the cache and applies it.
func (m *Mesh) reconcile(ctx context.Context, lister corelisters.ConfigMapNamespaceLister) error {
	cfg, err := stagingConfig(lister)
	if err != nil {
		return err
	}
	if cfg.VPN != vpn.WireGuard {
		// A star: the hub's VPN daemon routes every path, and the tunnel has
		// no peers to keep. The conditions' loop still works on the device.
		if cfg.VPN != m.star {
			m.star = cfg.VPN
			m.logf("the overlay uses %s, a star in which every path goes through the hub: no WireGuard peers to keep", cfg.VPN)
		}
		return nil
	}
	m.star = ""
	hub, err := cfg.MeshHub()
	if err != nil {
		return err
	}
	records, err := nodeRecords(lister, m.logf)
	if err != nil {
		return err
	}
	table, err := lister.Get(api.IPAMName)
	if err != nil {
		return fmt.Errorf("reading the overlay address table: %w", err)
	}
	addresses, err := site.DecodeAllocations(table)
	if err != nil {
		return err
	}
	c := mesh.Cluster{Hub: hub, Addresses: addresses, Observed: map[string]string{}}
	if cm, err := lister.Get(api.ObservedEndpointsName); err == nil {
		c.Observed = site.DecodeObserved(cm)
	} else if !apierrors.IsNotFound(err) {
		return err
	}
	for _, rec := range records {
		c.Nodes = append(c.Nodes, rec.MeshNode())
	}
	var plan mesh.Plan
	if m.Hub {
		plan = mesh.HubPeers(c)
	} else if plan, err = mesh.NodePeers(m.Node, c); err != nil {
		return err
	}
	if refused := fmt.Sprint(plan.Refused); refused != m.refused {
		m.refused = refused
		for _, r := range plan.Refused {
			m.logf("refusing node %s", r)
		}
	}
	changes, live, err := m.Applier.Apply(ctx, plan.Peers)
	if err != nil {
		return err
	}
	for _, c := range changes {
		m.logf("%s", c)
	}
	if m.Hub {
		return m.publishObservations(ctx, c, live)
	}
	return nil
}

// publishObservations publishes where the hub sees each node's packets come
// from (live, the dump Apply read), when that changed: one write per
// change, not per look. The dump from before Apply's changes shows every
// accepted node's endpoint as a second read would: the hub's peers declare
// no endpoint (mesh.HubPeers), so a change never sets one; an added peer
// has none until its packets come, and a removed peer is no accepted
// node's.
func (m *Mesh) publishObservations(ctx context.Context, c mesh.Cluster, live []mesh.LivePeer) error {
	observed := mesh.Observations(c, live)
	if m.published != nil && maps.Equal(observed, m.published) {
		return nil
	}
	if err := site.NewStore(m.Client).SaveObserved(ctx, observed); err != nil {
		return fmt.Errorf("publishing the observed endpoints: %w", err)
	}
	for name, endpoint := range observed {
		if m.published[name] != endpoint {
			m.logf("observed node %s at %s", name, endpoint)
		}
	}
	m.published = observed
	return nil
}

// stagingConfig is the staging configuration in the cache.
func stagingConfig(lister corelisters.ConfigMapNamespaceLister) (*site.Config, error) {
	cm, err := lister.Get(api.ConfigName)
	if err != nil {
		return nil, fmt.Errorf("reading the staging configuration: %w", err)
	}
	return site.DecodeConfig(cm)
}

// nodeRecords are the enrolled nodes' records in the cache; a corrupt one
// is logged and skipped, so that it cannot cut every other node off.
func nodeRecords(lister corelisters.ConfigMapNamespaceLister, logf func(string, ...any)) ([]site.NodeRecord, error) {
	cms, err := lister.List(labels.SelectorFromSet(labels.Set{api.LabelRecord: "node"}))
	if err != nil {
		return nil, err
	}
	var records []site.NodeRecord
	for _, cm := range cms {
		rec, err := site.DecodeNode(cm)
		if err != nil {
			logf("ignoring %s/%s: %v", cm.Namespace, cm.Name, err)
			continue
		}
		records = append(records, *rec)
	}
	return records, nil
}

func (m *Mesh) logf(format string, args ...any) { logTo(m.Log, format, args...) }

// logTo writes one timestamped line to w, if any.
func logTo(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, time.Now().UTC().Format(time.RFC3339)+" "+format+"\n", args...)
	}
}

// ErrNoNode means the agent was not told which node it runs on.
var ErrNoNode = errors.New("the agent needs the name of the node it runs on: --node NAME (the join bundle passes it), or --hub on the hub")
