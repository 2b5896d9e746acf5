package bundle

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

func sample() Bundle {
	return Bundle{
		Node: "tokyo-1", Site: "tokyo", OverlayIP: netip.MustParseAddr("10.23.0.2"), VPN: vpn.OpenVPN, VPNConfig: "client\n",
		Network:           vpn.Network{Prefix: netip.MustParsePrefix("10.23.0.0/16"), Hub: netip.MustParseAddr("10.23.0.1"), Endpoint: "198.18.0.1:1194"},
		APIServerEndpoint: "10.23.0.1:6443", Token: "abcdef.0123456789abcdef", TokenID: "abcdef",
		TokenExpires: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), CACertHash: "sha256:00", GeneratedAt: time.Now(),
	}
}

func TestJoinConfiguration(t *testing.T) {
	jc := sample().JoinConfiguration()
	for _, want := range []string{"kind: JoinConfiguration", `apiServerEndpoint: 10.23.0.1:6443`, `token: abcdef.0123456789abcdef`,
		`- sha256:00`, "- name: node-ip\n    value: 10.23.0.2", `value: kubectl-stage.io/site=tokyo,topology.kubernetes.io/zone=tokyo`} {
		if !strings.Contains(jc, want) {
			t.Errorf("JoinConfiguration lacks %q:\n%s", want, jc)
		}
	}
}

func TestScriptIsValidBashAndHidesTheToken(t *testing.T) {
	script, err := sample().Render()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(script), "0123456789abcdef") {
		t.Error("the token secret stands in clear text in the bundle; it belongs in the encoded kubeadm configuration only")
	}
	path := filepath.Join(t.TempDir(), "b.sh")
	if err := os.WriteFile(path, script, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-n", path).CombinedOutput(); err != nil {
		t.Fatalf("bash -n: %v\n%s", err, out)
	}
	out, err := exec.Command("bash", path, "bogus").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown step bogus") {
		t.Errorf("unknown step: %v %s", err, out)
	}
}
