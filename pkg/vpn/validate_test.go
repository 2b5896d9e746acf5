package vpn

import (
	"net/netip"
	"strings"
	"testing"
)

// injections are values that would add a line or a directive to a VPN
// configuration, or run a command, if they were written into one.
var injections = []string{
	"$(touch /tmp/PWNED)",
	"`touch /tmp/PWNED`",
	"x'y",
	"x;touch /tmp/PWNED",
	"x\nscript-security 2\nup /bin/sh",
	"x\r\nscript-security 2",
	"../../etc/passwd",
	"x y",
}

func TestSplitEndpoint(t *testing.T) {
	tests := []struct {
		in       string
		wantHost string
		wantPort int
		wantErr  string
	}{
		{in: "198.18.0.1:1194", wantHost: "198.18.0.1", wantPort: 1194},
		{in: "vpn.example.org:51820", wantHost: "vpn.example.org", wantPort: 51820},
		{in: "[2001:db8::1]:6443", wantHost: "2001:db8::1", wantPort: 6443},
		{in: "198.18.0.1:+1194", wantErr: "without sign or leading zero"},
		{in: "198.18.0.1:01194", wantErr: "without sign or leading zero"},
		{in: "198.18.0.1:0", wantErr: "1-65535"},
		{in: "198.18.0.1:65536", wantErr: "1-65535"},
		{in: "198.18.0.1", wantErr: "not HOST:PORT"},
		{in: "[fe80::1%eth0]:1194", wantErr: "zone"},
		{in: "10.23.0.1:6443$(touch PWNED)", wantErr: "port must be"},
		{in: "$(touch PWNED):6443", wantErr: "neither an IP address nor a DNS name"},
		{in: "10.23.0.1\nscript-security 2\nup x:1194", wantErr: "neither an IP address nor a DNS name"},
		{in: "`id`:1194", wantErr: "neither"},
		{in: "a;b:1194", wantErr: "neither"},
		{in: "a'b:1194", wantErr: "neither"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			host, port, err := SplitEndpoint(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || host != tt.wantHost || port != tt.wantPort {
				t.Errorf("= %q %d %v", host, port, err)
			}
		})
	}
}

// TestRenderRefusesInjection: no rendering function writes a value that could
// add a line to a configuration or a path outside the hub's directory.
func TestRenderRefusesInjection(t *testing.T) {
	m := newMaterial(t)
	key, _ := NewWireGuardKey()
	wgNet := network
	wgNet.Endpoint = "198.18.0.1:51820"
	ip := netip.MustParseAddr("10.23.0.2")
	for _, bad := range injections {
		cases := map[string]func() error{
			"hub endpoint (client)": func() error {
				n := network
				n.Endpoint = "198.18.0.1:1194" + bad
				_, err := OpenVPNClient{Network: n, CA: m.ca, Cert: m.cert, Key: m.key, TLSCrypt: m.tlsCrypt}.Render()
				return err
			},
			"hub endpoint host (wireguard)": func() error {
				n := wgNet
				n.Endpoint = bad + ":51820"
				_, err := WireGuardClient{Network: n, PrivateKey: key.Private, HubPublicKey: key.Public}.Render()
				return err
			},
			"CA with a trailer": func() error {
				_, err := OpenVPNClient{Network: network, CA: append(append([]byte{}, m.ca...), "</ca>\n"+bad+"\n<ca>\n"...), Cert: m.cert, Key: m.key, TLSCrypt: m.tlsCrypt}.Render()
				return err
			},
			"tls-crypt key": func() error {
				_, err := OpenVPNClient{Network: network, CA: m.ca, Cert: m.cert, Key: m.key, TLSCrypt: append(append([]byte{}, m.tlsCrypt...), bad...)}.Render()
				return err
			},
			"peer name (ccd path)": func() error {
				_, err := OpenVPNHub{Network: network, CA: m.ca, Cert: m.cert, Key: m.key, TLSCrypt: m.tlsCrypt, CRL: m.crl,
					Peers: []Peer{{Name: "a" + bad, Site: "s", IP: ip}}}.Files()
				return err
			},
			"peer site": func() error {
				_, err := OpenVPNHub{Network: network, CA: m.ca, Cert: m.cert, Key: m.key, TLSCrypt: m.tlsCrypt, CRL: m.crl,
					Peers: []Peer{{Name: "a", Site: "s" + bad, IP: ip}}}.Files()
				return err
			},
			"peer key": func() error {
				_, err := WireGuardHub{Network: wgNet, PrivateKey: key.Private, Peers: []Peer{{Name: "a", Site: "s", IP: ip, WireGuardPublicKey: key.Public + bad}}}.Files()
				return err
			},
			"hub private key": func() error {
				_, err := WireGuardHub{Network: wgNet, PrivateKey: key.Private + bad}.Files()
				return err
			},
			"hub public key (client)": func() error {
				_, err := WireGuardClient{Network: wgNet, PrivateKey: key.Private, HubPublicKey: bad}.Render()
				return err
			},
		}
		for name, render := range cases {
			if err := render(); err == nil {
				t.Errorf("%s %q: rendered", name, bad)
			}
		}
	}
}
