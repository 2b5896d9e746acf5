package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubectl-stage/kubectl-stage/test/realnode"
)

// The demo's modes: real nodes (kubeadm join, kubelets, containerd in
// machines at each site) or simulated ones (kwok), chosen by -mode.
const (
	ModeAuto      = "auto"
	ModeReal      = "real"
	ModeSimulated = "simulated"
)

// resolveMode picks the mode the demo runs in and says why.
func (o Options) resolveMode() (mode, why string, err error) {
	ok, missing := realnode.Available()
	switch o.Mode {
	case ModeSimulated:
		return ModeSimulated, "chosen with -mode=simulated", nil
	case ModeReal:
		if !ok {
			return "", "", fmt.Errorf("-mode=real needs real nodes, which cannot run here: %s", missing)
		}
		return ModeReal, "chosen with -mode=real", nil
	case ModeAuto, "":
		if ok {
			return ModeReal, "running as root with kubelet, kubeadm, containerd and openvpn here; -mode=simulated runs kwok nodes instead", nil
		}
		return ModeSimulated, "real nodes need " + missing + "; kwok plays the kubelets", nil
	}
	return "", "", fmt.Errorf("unknown -mode %q: use auto, real or simulated", o.Mode)
}

// runReal plays the story on real nodes, one machine per site: each runs
// its join bundle (tunnel, kubeadm join, kubelet, containerd), the chart's
// webhook runs as pods on them, the gossip example's peers find each other
// over the tunnels, and a rollout replaces them site by site.
func runReal(ctx context.Context, o Options) (_ *Report, err error) {
	binDir := filepath.Join(o.Dir, "bin")
	o.step("building kubectl-stage, the gossip client, the machines' init and the images (make image) into %s", binDir)
	bin, err := realnode.Build(ctx, binDir)
	if err != nil {
		return nil, err
	}
	c, err := realnode.Start(ctx, realnode.Config{Sites: o.Sites, Dir: o.Dir, Bin: bin, Progress: &indenter{w: o.Out}})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, c.Stop()) }()
	if err := c.JoinAll(ctx); err != nil {
		return nil, err
	}
	d := &demo{Options: o, cp: c.CP, kubeconfig: c.CP.Kubeconfig, bin: binaries{gossip: bin.Gossip}, hubDir: filepath.Join(o.Dir, "hub")}
	if err := d.stage(ctx, "sites"); err != nil {
		return nil, err
	}
	out, err := c.InstallChart(ctx)
	fmt.Fprint(&indenter{w: o.Out}, out)
	if err != nil {
		return nil, err
	}
	report, err := d.playApp(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w\n\nthe cluster when it failed:\n%s", err, c.Diagnose(ctx))
	}
	o.step("each peer's own view, asked on its machine over the tunnels")
	views, err := c.WaitViews(ctx, 2*time.Minute)
	if err != nil {
		return nil, err
	}
	report.Views = map[string][]string{}
	for _, p := range report.Peers {
		report.Views[p.Pod] = views[p.Node]
		fmt.Fprintf(o.Out, "    %s on %s at %s sees %s\n", p.Pod, p.Node, p.Site, strings.Join(views[p.Node], ", "))
	}
	report.OverlayProven = true
	for _, n := range c.Nodes {
		report.JoinSeconds = append(report.JoinSeconds, n.JoinTime.Seconds())
	}
	d.keepUntilDone(ctx, d.kubeconfig, filepath.Dir(bin.Stage))
	return report, nil
}
