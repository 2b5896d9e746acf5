package main

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
	"github.com/kubectl-stage/kubectl-stage/test/realnode"
)

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// TestDemo runs README's main job, the whole story, and checks each step:
// enrollment, the webhook from the chart's manifests, the example's pods
// mutated per site, the rollout site by site, and (as root) the peers
// finding each other over real OpenVPN tunnels with the injected env.
func TestDemo(t *testing.T) {
	t.Run(ModeSimulated, func(t *testing.T) { testDemo(t, ModeSimulated) })
	t.Run(ModeReal, func(t *testing.T) {
		if ok, why := realnode.Available(); !ok {
			t.Skip(why)
		}
		testDemo(t, ModeReal)
	})
}

func testDemo(t *testing.T, mode string) {
	dir := t.TempDir()
	sites := []string{"tokyo", "osaka", "frankfurt"}
	report, err := Run(context.Background(), Options{Sites: sites, NodesPerSite: 1, Dir: dir, Out: testWriter{t}, Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	if report.Mode != mode {
		t.Errorf("the demo ran in %s mode, want %s", report.Mode, mode)
	}
	if mode == ModeReal {
		t.Logf("bash NODE.join.sh to Ready: %v seconds", report.JoinSeconds)
	}

	// One peer per site; the advertise address is the node's overlay IP,
	// seeds are other peers' overlay addresses.
	if len(report.Peers) != len(sites) {
		t.Fatalf("%d peers, want one per site: %+v", len(report.Peers), report.Peers)
	}
	overlayIPs := map[string]bool{}
	for _, p := range report.Peers {
		overlayIPs[p.OverlayIP] = true
	}
	var seen []string
	for _, p := range report.Peers {
		env := harness.EnvMap(p.Env)
		seen = append(seen, p.Site)
		if p.HostIP != p.OverlayIP || env[api.EnvAdvertiseAddr] != p.OverlayIP+":"+appPort || env[api.EnvSite] != p.Site {
			t.Errorf("peer %s: hostIP %s, overlay %s, env %v", p.Pod, p.HostIP, p.OverlayIP, env)
		}
		for _, seed := range strings.Split(env[api.EnvPeerSeeds], ",") {
			if seed == "" {
				continue
			}
			ip, _, _ := strings.Cut(seed, ":")
			if !overlayIPs[ip] || ip == p.OverlayIP {
				t.Errorf("peer %s has seed %s, which is not another peer's overlay address", p.Pod, seed)
			}
		}
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"frankfurt", "osaka", "tokyo"}) {
		t.Errorf("peers at sites %v, want one at each", seen)
	}

	// The rollout went site by site: canary first (by name), then the rest.
	if report.RolloutPhase != rollout.PhaseComplete || !slices.Equal(report.RolloutOrder, []string{"frankfurt", "osaka", "tokyo"}) {
		t.Errorf("rollout %s in order %v", report.RolloutPhase, report.RolloutOrder)
	}

	if ok, _ := netns.Available(); ok || mode == ModeReal {
		if !report.OverlayProven || len(report.Views) != len(sites) {
			t.Error("running as root, the overlay part must run and succeed")
		}
		for pod, members := range report.Views {
			if len(members) != len(sites) {
				t.Errorf("%s sees %v over the overlay", pod, members)
			}
		}
		if left, err := netns.Leftovers(); err != nil || len(left) > 0 {
			t.Errorf("network namespaces left behind: %v %v", left, err)
		}
	} else if report.OverlaySkip == "" {
		t.Error("without root the overlay part must say it was skipped and why")
	}

	for _, f := range []string{"bundles/tokyo-1.join.sh", "bundles/osaka-1.join.sh", "hub/server.conf", "hub/ccd/tokyo-1"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s was not written: %v", f, err)
		} else if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", f, st.Mode().Perm())
		}
	}
	for _, gone := range []string{"kubeconfig", "webhook-tls"} {
		if _, err := os.Stat(filepath.Join(dir, gone)); !os.IsNotExist(err) {
			t.Errorf("%s of the stopped demo was left behind", gone)
		}
	}
}

func TestResolveMode(t *testing.T) {
	canRunReal, _ := realnode.Available()
	for _, tc := range []struct {
		mode, want, wantErr string
	}{
		{mode: ModeSimulated, want: ModeSimulated},
		{mode: "kwok", wantErr: `unknown -mode "kwok": use auto, real or simulated`},
	} {
		got, why, err := Options{Mode: tc.mode}.resolveMode()
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("-mode=%s: error %v, want %q", tc.mode, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want || why == "" {
			t.Errorf("-mode=%s: %s (%s), %v; want %s with a reason", tc.mode, got, why, err, tc.want)
		}
	}
	// auto is real exactly when real nodes can run here, and says why.
	got, why, err := Options{Mode: ModeAuto}.resolveMode()
	want := map[bool]string{true: ModeReal, false: ModeSimulated}[canRunReal]
	if err != nil || got != want || why == "" {
		t.Errorf("-mode=auto: %s (%s), %v; want %s", got, why, err, want)
	}
	_, _, err = Options{Mode: ModeReal}.resolveMode()
	if canRunReal != (err == nil) {
		t.Errorf("-mode=real where real nodes can run is %v: error %v", canRunReal, err)
	}
}
