package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/netcond"
	"github.com/kubectl-stage/kubectl-stage/pkg/site"
)

// RunFunc runs a command with stdin and returns its standard output, and an
// error holding its standard error.
type RunFunc func(ctx context.Context, stdin string, name string, args ...string) ([]byte, error)

// RunCommand runs a command on this machine.
func RunCommand(ctx context.Context, stdin string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// RuleApplier puts a netcond.Plan's commands in place on one device, and
// removes them: the agent's nftables table and root qdisc, nothing else.
type RuleApplier struct {
	Device string
	// Run runs a command; nil is RunCommand.
	Run RunFunc

	// applied is the commands in place, to run nothing when they stay.
	applied []netcond.Command
}

func (a *RuleApplier) run(ctx context.Context, c netcond.Command) error {
	run := a.Run
	if run == nil {
		run = RunCommand
	}
	_, err := run(ctx, c.Stdin, c.Args[0], c.Args[1:]...)
	return err
}

// Reset removes every rule the agent may have added, whoever's process
// added it (a crashed agent's included).
func (a *RuleApplier) Reset(ctx context.Context) error {
	var errs []error
	for _, c := range netcond.Reset(a.Device) {
		if err := a.run(ctx, c); err != nil && !netcond.IsAbsent(err.Error()) {
			errs = append(errs, err)
		}
	}
	a.applied = nil
	if len(errs) > 0 {
		return fmt.Errorf("removing the network condition rules: %v", errs)
	}
	return nil
}

// netemProbeLink is the veth pair ProbeNetem creates for a moment.
const netemProbeLink = "kstg-netem0"

// ProbeNetem says whether the kernel can delay packets, and why not, by
// adding a netem qdisc to a veth pair of its own, created and deleted for
// it: the overlay device's traffic is never disturbed by the probe.
func (a *RuleApplier) ProbeNetem(ctx context.Context) (bool, string, error) {
	remove := netcond.Command{Args: []string{"ip", "link", "del", netemProbeLink}}
	// A crashed agent's pair first.
	if err := a.run(ctx, remove); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
		return false, "", err
	}
	if err := a.run(ctx, netcond.Command{Args: []string{"ip", "link", "add", netemProbeLink, "type", "veth", "peer", "name", "kstg-netem1"}}); err != nil {
		return false, "", fmt.Errorf("creating a veth pair to probe for sch_netem: %w", err)
	}
	netemErr := a.run(ctx, netcond.Command{Args: []string{"tc", "qdisc", "add", "dev", netemProbeLink, "root", "netem", "delay", "0ms"}})
	if err := a.run(ctx, remove); err != nil {
		return false, "", err
	}
	switch {
	case netemErr == nil:
		return true, "", nil
	case strings.Contains(netemErr.Error(), "qdisc kind is unknown"):
		return false, netcond.NetemMissing, nil
	default:
		return false, "netem refused: " + netemErr.Error(), nil
	}
}

// Apply replaces the rules in place by the plan's; when they are the same
// it runs nothing. When a command fails, every rule is removed again: a
// half-applied matrix would measure as something nobody asked for.
func (a *RuleApplier) Apply(ctx context.Context, cmds []netcond.Command) (changed bool, err error) {
	if slices.EqualFunc(cmds, a.applied, func(x, y netcond.Command) bool { return x.String() == y.String() }) && a.applied != nil {
		return false, nil
	}
	if err := a.Reset(ctx); err != nil {
		return false, err
	}
	for _, c := range cmds {
		if err := a.run(ctx, c); err != nil {
			if rerr := a.Reset(ctx); rerr != nil {
				return true, fmt.Errorf("%w; and then %v", err, rerr)
			}
			return true, err
		}
	}
	a.applied = append([]netcond.Command{}, cmds...)
	return true, nil
}

// NetConditions applies the cluster's network conditions to this node's
// overlay interface and publishes what it applies on its Node.
type NetConditions struct {
	Client kubernetes.Interface
	// Records is the process's watch of kubectl-stage's ConfigMaps.
	Records *Records
	Node    string
	Rules   *RuleApplier
	Resync  time.Duration
	Log     io.Writer
	// Prober measures the round trips to the other nodes; nil measures none.
	Prober *Prober
	// Identity names this agent in the status (netcond.Status.AppliedBy).
	Identity string
	// PublishEvery bounds how often the status is written while only
	// measurements change.
	PublishEvery time.Duration

	netem       bool
	netemReason string
	mu          sync.Mutex
	status      netcond.Status
	published   string
	publishedAt time.Time
	lastErr     string
	publishErr  string
}

// Run removes leftover rules, probes the kernel, then applies the
// conditions on every change until ctx ends, and removes its rules then.
func (n *NetConditions) Run(ctx context.Context) error {
	// What a crashed agent left goes first.
	if err := n.Rules.Reset(ctx); err != nil {
		return err
	}
	netem, reason, err := n.Rules.ProbeNetem(ctx)
	if err != nil {
		return fmt.Errorf("network conditions on %s: %w", n.Rules.Device, err)
	}
	n.netem, n.netemReason = netem, reason
	// A loop that runs again after a handover publishes afresh: the other
	// agent wrote the Node meanwhile.
	n.mu.Lock()
	n.published, n.status.AppliedBy = "", n.Identity
	n.mu.Unlock()
	if !netem {
		n.logf("latency and jitter cannot be applied on this node: %s", reason)
	}
	defer func() {
		// ctx is over: the removal gets its own time.
		cleanup, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := n.Rules.Reset(cleanup); err != nil {
			n.logf("%v", err)
		} else {
			n.logf("network condition rules removed from %s", n.Rules.Device)
		}
	}()
	if n.Prober != nil {
		go func() {
			if err := n.Prober.Run(ctx); err != nil {
				n.logf("measuring round trips stopped: %v", err)
			}
		}()
	}
	publish := time.NewTicker(n.PublishEvery)
	defer publish.Stop()
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-publish.C:
				n.publish(ctx, false)
			}
		}
	}()
	return n.Records.Follow(ctx, n.Resync, nil, func(lister corelisters.ConfigMapNamespaceLister) {
		err := n.reconcile(ctx, lister)
		msg := ""
		if err != nil {
			msg = err.Error()
			n.mu.Lock()
			n.status.Error = msg
			n.mu.Unlock()
		}
		if msg != n.lastErr {
			n.lastErr = msg
			if err != nil {
				n.logf("network conditions not applied (retrying on the next change or in %s): %v", n.Resync, err)
			}
		}
		n.publish(ctx, true)
	})
}

func (n *NetConditions) reconcile(ctx context.Context, lister corelisters.ConfigMapNamespaceLister) error {
	cfg, err := stagingConfig(lister)
	if err != nil {
		return err
	}
	network, err := cfg.Network()
	if err != nil {
		return err
	}
	records, err := nodeRecords(lister, n.logf)
	if err != nil {
		return err
	}
	stored, err := lister.Get(netcond.ConfigMapName)
	switch {
	case apierrors.IsNotFound(err):
		stored = nil
	case err != nil:
		return err
	}
	doc, version, err := site.DecodeNetConditions(stored)
	if err != nil {
		return err
	}
	in := netcond.Input{Doc: doc, Self: n.Node, Hub: network.Hub, Device: n.Rules.Device, Netem: n.netem}
	for _, r := range records {
		in.Nodes = append(in.Nodes, netcond.Node{Name: r.Name, Site: r.Site, OverlayIP: r.OverlayIP})
	}
	plan, err := netcond.Rules(in)
	if err != nil {
		return err
	}
	if n.Prober != nil {
		for _, r := range records {
			if r.Name == n.Node {
				n.Prober.SetPeers(r.OverlayIP, in.Nodes)
			}
		}
	}
	if !n.netem {
		for _, p := range plan.Pairs {
			if p.NotApplied != nil && p.NotApplied["latency"] != "" {
				p.NotApplied["latency"] = n.netemReason
			}
		}
	}
	changed, err := n.Rules.Apply(ctx, plan.Commands)
	if err != nil {
		return err
	}
	switch {
	case changed && len(plan.Commands) == 0:
		n.logf("no network conditions for this node (conditions version %q): no rules on %s", version, n.Rules.Device)
	case changed:
		n.logf("network conditions applied on %s (%d commands, conditions version %q)", n.Rules.Device, len(plan.Commands), version)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.status.Error, n.status.ConditionsVersion, n.status.Pairs = "", version, plan.Pairs
	for _, r := range records {
		if r.Name == n.Node {
			n.status.Site = r.Site
		}
	}
	return nil
}

// publish writes the status to the Node's annotation when it changed and,
// unless force, not more often than PublishEvery.
func (n *NetConditions) publish(ctx context.Context, force bool) {
	n.mu.Lock()
	status := n.status
	if n.Prober != nil {
		status.Peers = n.Prober.Figures()
	}
	data, err := json.Marshal(status)
	if err != nil || string(data) == n.published || (!force && time.Since(n.publishedAt) < n.PublishEvery) {
		n.mu.Unlock()
		return
	}
	n.mu.Unlock()
	status.Updated = time.Now().UTC().Truncate(time.Second)
	withTime, _ := json.Marshal(status)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{api.AnnotationNetStatus: string(withTime)}}})
	_, err = n.Client.CoreV1().Nodes().Patch(ctx, n.Node, types.MergePatchType, patch, metav1.PatchOptions{})
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		// Logged once per distinct error: a node whose kubelet has not
		// registered its Node yet would otherwise log every few seconds.
		if msg := err.Error(); msg != n.publishErr {
			n.publishErr = msg
			n.logf("publishing the network status on node %s (retrying every %s): %v", n.Node, n.PublishEvery, err)
		}
		return
	}
	n.publishErr = ""
	n.published, n.publishedAt = string(data), time.Now()
}

func (n *NetConditions) logf(format string, args ...any) { logTo(n.Log, format, args...) }
