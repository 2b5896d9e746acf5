package vpn

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/bundle"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	"github.com/kubectl-stage/kubectl-stage/test/netns"
)

// TestStoredConfigInjection plays whoever may update ConfigMaps in
// kubectl-stage-system: payloads written into the stored configuration must
// make join and hub-config refuse, naming the field and the fix, with
// nothing written; and a bundle rendered with such values anyway runs
// nothing at the site.
func TestStoredConfigInjection(t *testing.T) {
	netns.RequireRoot(t)
	cp := harness.StartForTest(t, harness.Options{ServingIPs: []net.IP{net.ParseIP("10.23.0.1")}})
	if err := cp.KubeadmBootstrap(context.Background()); err != nil {
		t.Fatal(err)
	}
	tp := netns.New(t, 1)
	dir := t.TempDir()
	marker := filepath.Join(dir, "PWNED")
	initArgs := []string{"init", "--hub-endpoint", netns.HubAddress, "--pod-cidr", harness.PodCIDR, "--service-cidr", harness.ServiceCIDR}
	stage(t, cp, initArgs...)

	ctx := context.Background()
	cms := cp.Client.CoreV1().ConfigMaps(api.SystemNamespace)
	tamper := func(field, value string) {
		t.Helper()
		cm, err := cms.Get(ctx, api.ConfigName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var cfg map[string]any
		if err := json.Unmarshal([]byte(cm.Data["config"]), &cfg); err != nil {
			t.Fatal(err)
		}
		cfg[field] = value
		data, _ := json.Marshal(cfg)
		cm.Data["config"] = string(data)
		if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	payloads := []struct{ field, value string }{
		{"apiServerEndpoint", "10.23.0.1:6443$(touch " + marker + ")"},
		{"apiServerEndpoint", "10.23.0.1:6443`touch " + marker + "`"},
		{"apiServerEndpoint", "10.23.0.1:6443'; touch " + marker + "; '"},
		{"hubEndpoint", "198.18.0.1 1194\nscript-security 2\nup \"/usr/bin/touch " + marker + "\"\nremote 198.18.0.1:1194"},
		{"hubEndpoint", "198.18.0.1:+1194"},
	}
	for _, p := range payloads {
		tamper(p.field, p.value)
		path := filepath.Join(dir, "x-1.join.sh")
		out, err := stageErr(cp, "join", "site-x", "--node", "x-1", "-f", path)
		if err == nil || !strings.Contains(out, "is corrupt") || !strings.Contains(out, p.field) || !strings.Contains(out, "kubectl stage init") {
			t.Errorf("join with %s = %q: %v\n%s", p.field, p.value, err, out)
		}
		if _, err := os.Stat(path); err == nil {
			t.Errorf("join with a corrupt %s wrote a bundle", p.field)
		}
		if _, err := cms.Get(ctx, api.NodePrefix+"x-1", metav1.GetOptions{}); err == nil {
			t.Errorf("join with a corrupt %s left a node record", p.field)
		}
		out, err = stageErr(cp, "hub-config", "--dir", filepath.Join(dir, "hub"))
		if err == nil || !strings.Contains(out, p.field) {
			t.Errorf("hub-config with %s = %q: %v\n%s", p.field, p.value, err, out)
		}
		if _, err := os.Stat(filepath.Join(dir, "hub", "server.conf")); err == nil {
			t.Errorf("hub-config with a corrupt %s wrote server.conf", p.field)
		}
	}
	// The fix the message names: init with the flags it was made with.
	stage(t, cp, initArgs...)
	out := stage(t, cp, "join", "site-x", "--node", "x-1", "-f", filepath.Join(dir, "x-1.join.sh"))
	if !strings.Contains(out, "with overlay IP") {
		t.Errorf("join after the repair:\n%s", out)
	}

	// A node record that lands in the hub's configuration (ccd file name,
	// comment, peer section) is checked too.
	hubDir := filepath.Join(dir, "hub")
	rec, err := cms.Get(ctx, api.NodePrefix+"x-1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	good := rec.Data["record"]
	for _, bad := range []string{`"name": "../../../tmp/x"`, `"site": "x\nscript-security 2"`} {
		field, _, _ := strings.Cut(bad, ":")
		var r map[string]any
		_ = json.Unmarshal([]byte(good), &r)
		var v map[string]any
		_ = json.Unmarshal([]byte("{"+bad+"}"), &v)
		for k, val := range v {
			r[k] = val
		}
		data, _ := json.Marshal(r)
		rec.Data["record"] = string(data)
		if rec, err = cms.Update(ctx, rec, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := stageErr(cp, "hub-config", "--dir", hubDir)
		if err == nil || !strings.Contains(out, "node-x-1 is corrupt") || !strings.Contains(out, strings.Trim(field, `"`)) {
			t.Errorf("hub-config with a node record %s: %v\n%s", bad, err, out)
		}
		if _, err := os.Stat(filepath.Join(hubDir, "server.conf")); err == nil {
			t.Errorf("hub-config with a corrupt node record wrote server.conf")
		}
	}
	rec.Data["record"] = good
	if _, err := cms.Update(ctx, rec, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	stage(t, cp, "hub-config", "--dir", hubDir)

	// So is the hub Secret, whose tls-crypt key every bundle inlines.
	secrets := cp.Client.CoreV1().Secrets(api.SystemNamespace)
	hub, err := secrets.Get(ctx, api.VPNHubName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hub.Data["tls-crypt.key"] = append(hub.Data["tls-crypt.key"], "</tls-crypt>\nscript-security 2\nup \"/usr/bin/touch "+marker+"\"\n<tls-crypt>\n"...)
	if _, err := secrets.Update(ctx, hub, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "y-1.join.sh")
	out, err = stageErr(cp, "join", "site-x", "--node", "y-1", "-f", path)
	if err == nil || !strings.Contains(out, "kubectl-stage-vpn-hub is corrupt") || !strings.Contains(out, "tls-crypt.key") {
		t.Errorf("join with a corrupt tls-crypt key: %v\n%s", err, out)
	}
	if _, err := os.Stat(path); err == nil {
		t.Error("join with a corrupt tls-crypt key wrote a bundle")
	}
	if _, err := cms.Get(ctx, api.NodePrefix+"y-1", metav1.GetOptions{}); err == nil {
		t.Error("join with a corrupt tls-crypt key left a node record")
	}

	// Defense in depth: a bundle whose values were never validated (the
	// bundle API used directly) still treats them as data.
	for _, backend := range []vpn.Backend{vpn.OpenVPN, vpn.WireGuard} {
		for _, p := range payloads {
			b := bundle.Bundle{
				Node: "x-1" + p.value, Site: "site-x" + p.value, OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: backend,
				Network:           vpn.Network{Prefix: netip.MustParsePrefix("10.23.0.0/16"), Hub: netip.MustParseAddr("10.23.0.1"), Endpoint: p.value},
				VPNConfig:         "client\n" + p.value,
				APIServerEndpoint: p.value, Token: p.value, TokenID: p.value, CACertHash: p.value,
				TokenExpires: time.Now().Add(time.Hour), GeneratedAt: time.Now(),
			}
			script, err := b.Render()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "hostile.join.sh")
			if err := os.WriteFile(path, script, 0o600); err != nil {
				t.Fatal(err)
			}
			for _, step := range []string{"down", "check"} {
				cmd := tp.Command(tp.Sites[0], "bash", path, step)
				cmd.Env = append(os.Environ(), "STAGE_PREFIX="+filepath.Join(dir, "root"), "STAGE_WAIT=1", "STAGE_IFACE=stgx0")
				out, _ := cmd.CombinedOutput()
				if _, err := os.Stat(marker); err == nil {
					t.Fatalf("%s bundle with %s = %q: `%s` ran the payload:\n%s", backend, p.field, p.value, step, out)
				}
			}
		}
	}
}
