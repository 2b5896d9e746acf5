package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/examples/gossip/node"
	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

// overlay brings up the real VPN: a hub namespace running OpenVPN from the
// configuration hub-config wrote, and one namespace per site where the
// join bundle of the node hosting that site's peer brings its tunnel up.
// Then each peer runs there with the environment the webhook injected into
// its pod; sites cannot reach each other except through the tunnels.
func (d *demo) overlay(ctx context.Context, report *Report) error {
	d.step("real OpenVPN tunnels: a hub and %d site network namespaces (root)", len(report.Peers))
	tp, err := netns.Create(len(report.Peers))
	if tp != nil {
		defer tp.Destroy()
	}
	if err != nil {
		return err
	}
	logs := filepath.Join(d.Dir, "logs")
	if err := os.MkdirAll(logs, 0o700); err != nil {
		return err
	}
	hub, err := harness.StartDaemon("openvpn-hub", "ip",
		[]string{"netns", "exec", tp.Hub, "openvpn", "--cd", d.hubDir, "--config", "server.conf"}, filepath.Join(logs, "openvpn-hub.log"))
	if err != nil {
		return err
	}
	defer hub.Stop()

	nsOf := map[string]string{}
	for i, peer := range report.Peers {
		ns := tp.Sites[i]
		nsOf[peer.Pod] = ns
		bundle := exec.CommandContext(ctx, "ip", "netns", "exec", ns, "bash", d.bundle(peer.Node), "vpn")
		// Each "machine" gets its own root and tunnel device name, since the
		// namespaces share this host's filesystem.
		bundle.Env = append(os.Environ(), "STAGE_PREFIX="+filepath.Join(d.Dir, "roots", peer.Node), "STAGE_WAIT=30", fmt.Sprintf("STAGE_IFACE=stage%d", i))
		out, err := bundle.CombinedOutput()
		fmt.Fprint(&indenter{w: d.Out}, fmt.Sprintf("[%s at %s] bash %s vpn\n%s", peer.Node, peer.Site, filepath.Base(d.bundle(peer.Node)), out))
		if err != nil {
			return fmt.Errorf("the join bundle of %s could not bring the tunnel up: %v", peer.Node, err)
		}
	}
	for i, a := range tp.Sites {
		for _, b := range tp.Sites[i+1:] {
			if tp.Ping(a, tp.SiteAddress[b]) {
				return fmt.Errorf("sites %s and %s reach each other outside the VPN: the demo would prove nothing", a, b)
			}
		}
	}
	fmt.Fprintf(d.Out, "    the site namespaces cannot reach each other's addresses (%s): only the tunnels connect them\n",
		strings.Join(underlay(tp), ", "))

	d.step("starting the gossip peers in their site namespaces with the environment the webhook injected")
	var addrs = map[string]string{}
	for _, peer := range report.Peers {
		env := harness.EnvMap(peer.Env)
		args := []string{"netns", "exec", nsOf[peer.Pod], "env"}
		for _, e := range peer.Env {
			args = append(args, e.Name+"="+e.Value)
		}
		args = append(args, d.bin.gossip, "--interval=300ms")
		fmt.Fprintf(d.Out, "    [%s] %s=%s %s=%s %s\n", peer.Site, api.EnvAdvertiseAddr, env[api.EnvAdvertiseAddr], api.EnvPeerSeeds, env[api.EnvPeerSeeds], filepath.Base(d.bin.gossip))
		daemon, err := harness.StartDaemon("gossip-"+peer.Pod, "ip", args, filepath.Join(logs, peer.Pod+".log"))
		if err != nil {
			return err
		}
		defer daemon.Stop()
		addrs[peer.Pod] = env[api.EnvAdvertiseAddr]
	}

	report.Views = map[string][]string{}
	err = wait.PollUntilContextTimeout(ctx, 300*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, peer := range report.Peers {
			view, err := d.view(ctx, nsOf[peer.Pod], addrs[peer.Pod])
			if err != nil {
				return false, nil
			}
			var alive []string
			for _, m := range view.Members {
				if m.Alive {
					alive = append(alive, fmt.Sprintf("%s@%s(%s)", m.Name, m.Site, m.Addr))
				}
			}
			report.Views[peer.Pod] = alive
		}
		for _, members := range report.Views {
			if len(members) != len(report.Peers) {
				return false, nil
			}
		}
		return true, nil
	})
	for _, peer := range report.Peers {
		fmt.Fprintf(d.Out, "    %s at %s sees: %s\n", peer.Pod, peer.Site, strings.Join(report.Views[peer.Pod], ", "))
	}
	if err != nil {
		return fmt.Errorf("the peers did not all find each other over the overlay (logs in %s): %w", logs, err)
	}
	report.OverlayProven = true
	fmt.Fprintf(d.Out, "    every peer knows every other, across %d sites, over the overlay only\n", len(report.Peers))
	return nil
}

func underlay(tp *netns.Topology) []string {
	var out []string
	for _, s := range tp.Sites {
		out = append(out, tp.SiteAddress[s])
	}
	return out
}

// view asks a peer for its membership from inside its own namespace.
func (d *demo) view(ctx context.Context, ns, addr string) (node.View, error) {
	var v node.View
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", ns, d.bin.gossip, "peers", addr).Output()
	if err != nil {
		return v, err
	}
	return v, json.Unmarshal(out, &v)
}
