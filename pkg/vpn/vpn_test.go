package vpn

import (
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
)

var network = Network{Prefix: netip.MustParsePrefix("10.23.0.0/16"), Hub: netip.MustParseAddr("10.23.0.1"), Endpoint: "198.18.0.1:1194"}

// material is real PKI material in PEM form.
type material struct{ ca, cert, key, tlsCrypt, crl []byte }

func newMaterial(t testing.TB) material {
	t.Helper()
	ca, err := pki.NewCA("ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	hub, err := IssueHubCertificate(ca, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	key, err := hub.KeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	tc, err := NewTLSCryptKey()
	if err != nil {
		t.Fatal(err)
	}
	crl, err := CRL(ca, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	return material{ca: ca.CertificatePEM(), cert: hub.CertificatePEM(), key: key, tlsCrypt: tc, crl: crl}
}

func TestOpenVPNHubFiles(t *testing.T) {
	m := newMaterial(t)
	files, err := OpenVPNHub{Network: network, CA: m.ca, Cert: m.cert, Key: m.key, TLSCrypt: m.tlsCrypt, CRL: m.crl,
		Peers: []Peer{{Name: "tokyo-1", Site: "tokyo", IP: netip.MustParseAddr("10.23.0.2")}}}.Files()
	if err != nil {
		t.Fatal(err)
	}
	conf := string(files["server.conf"])
	for _, want := range []string{"port 1194", "topology subnet", "ifconfig 10.23.0.1 255.255.0.0", "ccd-exclusive", "crl-verify crl.pem",
		"tls-crypt tls-crypt.key", "tls-version-min 1.2", "data-ciphers AES-256-GCM:AES-128-GCM", "client-to-client",
		"\nmanagement management.sock unix\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("server.conf lacks %q", want)
		}
	}
	if got := string(files["ccd/tokyo-1"]); !strings.Contains(got, "ifconfig-push 10.23.0.2 255.255.0.0") {
		t.Errorf("ccd entry = %q", got)
	}
	if _, err := (OpenVPNHub{Network: Network{Endpoint: "no-port"}}).Files(); err == nil {
		t.Error("an endpoint without port was accepted")
	}
}

func TestOpenVPNClientInlinesCredentials(t *testing.T) {
	m := newMaterial(t)
	conf, err := OpenVPNClient{Network: network, CA: m.ca, Cert: m.cert, Key: m.key, TLSCrypt: m.tlsCrypt}.Render()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"remote 198.18.0.1 1194", "verify-x509-name kubectl-stage-hub name", "<key>\n" + string(m.key) + "</key>", "<tls-crypt>\n" + string(m.tlsCrypt) + "</tls-crypt>"} {
		if !strings.Contains(conf, want) {
			t.Errorf("client config lacks %q", want)
		}
	}
}

func TestCRLListsRevokedSerials(t *testing.T) {
	ca, _ := pki.NewCA("ca", time.Hour)
	data, err := CRL(ca, []Revoked{{Serial: big.NewInt(42), RevokedAt: time.Now()}}, 7)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	crl, err := x509.ParseRevocationList(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := crl.CheckSignatureFrom(ca.Cert); err != nil {
		t.Errorf("CRL signature: %v", err)
	}
	if len(crl.RevokedCertificateEntries) != 1 || crl.RevokedCertificateEntries[0].SerialNumber.Int64() != 42 || crl.Number.Int64() != 7 {
		t.Errorf("CRL = %+v", crl)
	}
	if !crl.NextUpdate.Equal(ca.Cert.NotAfter) {
		t.Errorf("CRL expires %v, want with the CA %v", crl.NextUpdate, ca.Cert.NotAfter)
	}
}

func TestWireGuardKeysAndConfigs(t *testing.T) {
	key, err := NewWireGuardKey()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := WireGuardPublicKey(key.Private)
	if err != nil || pub != key.Public {
		t.Fatalf("public key derivation: %q %v, want %q", pub, err, key.Public)
	}
	if _, err := WireGuardPublicKey("not base64!"); err == nil {
		t.Error("garbage private key accepted")
	}
	wgNet := network
	wgNet.Endpoint = "198.18.0.1:51820"
	files, err := WireGuardHub{Network: wgNet, PrivateKey: key.Private, Peers: []Peer{{Name: "a", Site: "s", IP: netip.MustParseAddr("10.23.0.9"), WireGuardPublicKey: key.Public}}}.Files()
	if err != nil {
		t.Fatal(err)
	}
	if hub := string(files["hub.conf"]); !strings.Contains(hub, "ListenPort = 51820") || !strings.Contains(hub, "PublicKey = "+key.Public+"\nAllowedIPs = 10.23.0.9/32") {
		t.Errorf("hub.conf:\n%s", hub)
	}
	client, err := WireGuardClient{Network: wgNet, PrivateKey: key.Private, HubPublicKey: key.Public}.Render()
	if err != nil || !strings.Contains(client, "Endpoint = 198.18.0.1:51820") || !strings.Contains(client, "AllowedIPs = 10.23.0.0/16") || strings.Contains(client, "ListenPort") {
		t.Errorf("client config (%v):\n%s", err, client)
	}
	// A node with a declared endpoint listens on its port, where other
	// sites send to it directly.
	client, err = WireGuardClient{Network: wgNet, PrivateKey: key.Private, HubPublicKey: key.Public, ListenPort: 51821}.Render()
	if err != nil || !strings.Contains(client, "PrivateKey = "+key.Private+"\nListenPort = 51821\n") {
		t.Errorf("client config with a listen port (%v):\n%s", err, client)
	}
}

func TestParseBackend(t *testing.T) {
	if _, err := ParseBackend("ipsec"); err == nil || !strings.Contains(err.Error(), `use "openvpn" or "wireguard"`) {
		t.Errorf("error = %v", err)
	}
	if b, err := ParseBackend("wireguard"); err != nil || b.DefaultPort() != 51820 {
		t.Errorf("wireguard: %v %v", b, err)
	}
}
