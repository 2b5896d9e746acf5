package bundle

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
	"sigs.k8s.io/yaml"
)

// payloads are values an attacker who may update the stored configuration
// would try; MARKER is replaced by a file that must never appear.
var payloads = []string{
	`$(touch MARKER)`,
	"`touch MARKER`",
	`'; touch MARKER; '`,
	`"; touch MARKER; "`,
	`x;touch MARKER`,
	"x\ntouch MARKER\n",
	"x\nscript-security 2\nup \"/bin/touch MARKER\"",
	`\'$(touch MARKER)\'`,
	`${IFS}$(touch${IFS}MARKER)`,
}

// TestHostileValuesRunNothing renders bundles whose every string comes from
// a payload (bypassing the validation join does) and runs their steps: the
// values must stay data.
func TestHostileValuesRunNothing(t *testing.T) {
	for i, payload := range payloads {
		for _, backend := range []vpn.Backend{vpn.OpenVPN, vpn.WireGuard} {
			dir := t.TempDir()
			marker := filepath.Join(dir, "PWNED")
			p := strings.ReplaceAll(payload, "MARKER", marker)
			b := sample()
			b.VPN = backend
			b.Node, b.Site, b.APIServerEndpoint, b.Network.Endpoint = "n"+p, "s"+p, "10.23.0.1:6443"+p, "198.18.0.1:1194"+p
			b.Token, b.TokenID, b.CACertHash, b.VPNConfig = "t"+p, "i"+p, "sha256:"+p, "client\n"+p
			script, err := b.Render()
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "b.sh")
			if err := os.WriteFile(path, script, 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
				t.Fatalf("payload %d (%s): bash -n: %v\n%s", i, backend, err, out)
			}
			for _, step := range []string{"down", "check", "bogus"} {
				cmd := exec.Command("bash", path, step)
				cmd.Env = append(os.Environ(), "STAGE_PREFIX="+dir, "STAGE_WAIT=1", "STAGE_IFACE=stgnone0")
				out, _ := cmd.CombinedOutput()
				if _, err := os.Stat(marker); err == nil {
					t.Fatalf("payload %d %q (%s): `bash NODE.join.sh %s` ran it:\n%s", i, payload, backend, step, out)
				}
			}
			// The kubeadm configuration is YAML: the values must come back
			// exactly, as strings, and add no key.
			var jc map[string]any
			if err := yaml.Unmarshal([]byte(b.JoinConfiguration()), &jc); err != nil {
				t.Fatalf("payload %d: JoinConfiguration is not YAML: %v", i, err)
			}
			bt := jc["discovery"].(map[string]any)["bootstrapToken"].(map[string]any)
			nr := jc["nodeRegistration"].(map[string]any)
			if bt["apiServerEndpoint"] != b.APIServerEndpoint || bt["token"] != b.Token || nr["name"] != b.Node || len(bt) != 3 || len(nr) != 2 {
				t.Errorf("payload %d: JoinConfiguration altered the values:\n%s", i, b.JoinConfiguration())
			}
		}
	}
}

func TestShellQuote(t *testing.T) {
	for _, s := range append([]string{"", "plain", "it's", "'", "''", "a\nb", `\`, "$HOME"}, payloads...) {
		out, err := exec.Command("bash", "-c", "printf %s "+shellQuote(s)).Output()
		if err != nil || string(out) != s {
			t.Errorf("shellQuote(%q) reads back as %q (%v)", s, out, err)
		}
	}
}

// TestShellcheck runs shellcheck on a rendered bundle of each backend.
func TestShellcheck(t *testing.T) {
	if _, err := exec.LookPath("shellcheck"); err != nil {
		t.Skip("shellcheck is not installed (apt-get install shellcheck)")
	}
	for _, backend := range []vpn.Backend{vpn.OpenVPN, vpn.WireGuard} {
		b := sample()
		b.VPN = backend
		b.APIServerEndpoint = "[fd00::1]:6443"
		b.OverlayIP = netip.MustParseAddr("10.23.0.9")
		script, err := b.Render()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "b.sh")
		if err := os.WriteFile(path, script, 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("shellcheck", "-s", "bash", path).CombinedOutput(); err != nil {
			t.Errorf("shellcheck on the %s bundle: %v\n%s", backend, err, out)
		}
	}
}

// TestEveryTemplateValueIsQuoted keeps it so: outside comments, every value
// the template inserts goes through sh (one bash word) or b64 (a heredoc
// bash does not expand); comments take values through comment only.
func TestEveryTemplateValueIsQuoted(t *testing.T) {
	action := regexp.MustCompile(`\{\{-?\s*([^}]*)\}\}`)
	for i, line := range strings.Split(scriptTemplate, "\n") {
		comment := strings.HasPrefix(strings.TrimSpace(line), "#")
		for _, m := range action.FindAllStringSubmatch(line, -1) {
			fn, _, _ := strings.Cut(m[1], " ")
			switch {
			case !comment && (fn == "sh" || fn == "b64"):
			case comment && (fn == "comment" || m[1] == ".Interface" || strings.HasPrefix(m[1], ".GeneratedAt")):
			default:
				t.Errorf("join.sh.tmpl:%d inserts %q unquoted: use {{sh ...}} (or {{comment ...}} in a comment)", i+1, m[0])
			}
		}
	}
}
