package site

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

func validConfig() Config {
	return Config{OverlayCIDR: "10.23.0.0/16", HubEndpoint: "198.18.0.1:1194", VPN: "openvpn", APIServerEndpoint: "10.23.0.1:6443",
		PodCIDR: "10.244.0.0/16", ServiceCIDR: "10.96.0.0/12", TokenTTL: Duration{24 * time.Hour}, CredentialValidity: Duration{time.Hour}}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "valid", change: func(*Config) {}},
		{name: "ipv6 api server", change: func(c *Config) { c.APIServerEndpoint = "[fd00::1]:6443" }},
		{name: "command substitution", change: func(c *Config) { c.APIServerEndpoint = "10.23.0.1:6443$(touch PWNED)" }, wantErr: "apiServerEndpoint"},
		{name: "backticks", change: func(c *Config) { c.HubEndpoint = "`touch PWNED`:1194" }, wantErr: "hubEndpoint"},
		{name: "quote", change: func(c *Config) { c.HubEndpoint = "a'b:1194" }, wantErr: "hubEndpoint"},
		{name: "semicolon", change: func(c *Config) { c.APIServerEndpoint = "10.23.0.1;id:6443" }, wantErr: "apiServerEndpoint"},
		{name: "openvpn directive", change: func(c *Config) { c.HubEndpoint = "198.18.0.1 1194\nscript-security 2\nup /x:1194" }, wantErr: "hubEndpoint"},
		{name: "plus port", change: func(c *Config) { c.HubEndpoint = "198.18.0.1:+1194" }, wantErr: "hubEndpoint"},
		{name: "leading zero", change: func(c *Config) { c.HubEndpoint = "198.18.0.1:01194" }, wantErr: "hubEndpoint"},
		{name: "backend", change: func(c *Config) { c.VPN = "ipsec" }, wantErr: "vpn"},
		{name: "overlay", change: func(c *Config) { c.OverlayCIDR = "10.23.0.0/16\nx" }, wantErr: "overlayCIDR"},
		{name: "pod cidr", change: func(c *Config) { c.PodCIDR = "x" }, wantErr: "podCIDR"},
		{name: "ttl", change: func(c *Config) { c.TokenTTL = Duration{} }, wantErr: "tokenTTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := validConfig()
			tt.change(&c)
			err := c.Validate()
			if (err != nil) != (tt.wantErr != "") || (err != nil && !strings.HasPrefix(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want an error starting %q", err, tt.wantErr)
			}
			if err != nil {
				msg := (&CorruptConfigError{Name: "ns/cm", Err: err}).Error()
				if strings.Contains(msg, "\n") || !strings.Contains(msg, "kubectl stage init") {
					t.Errorf("message %q: want one line naming the fix", msg)
				}
				if !errors.Is(&CorruptConfigError{Err: err}, err) {
					t.Error("CorruptConfigError does not unwrap")
				}
			}
		})
	}
}

func TestNodeRecordValidate(t *testing.T) {
	for _, name := range []string{"../x", "a\nb", "a;b", "$(id)"} {
		r := NodeRecord{Name: name, Site: "s", VPN: "openvpn"}
		if err := r.Validate(); err == nil {
			t.Errorf("record named %q accepted", name)
		}
	}
}

func TestHubSecretsValidate(t *testing.T) {
	key, _ := vpn.NewWireGuardKey()
	tc, _ := vpn.NewTLSCryptKey()
	for _, bad := range []string{"\nscript-security 2\nup /bin/sh", "$(touch PWNED)", "</tls-crypt>"} {
		wg := HubSecrets{WGPrivateKey: []byte(key.Private), WGPublicKeyKey: []byte(key.Public + bad)}
		if err := wg.Validate(); err == nil || !strings.Contains(err.Error(), WGPublicKeyKey) {
			t.Errorf("WireGuard public key %q: %v", bad, err)
		}
		ovpn := HubSecrets{TLSCryptKey: append(append([]byte{}, tc...), bad...)}
		if err := ovpn.Validate(); err == nil || !strings.Contains(err.Error(), TLSCryptKey) {
			t.Errorf("tls-crypt key %q: %v", bad, err)
		}
	}
	if err := (HubSecrets{WGPrivateKey: []byte(key.Private), WGPublicKeyKey: []byte(key.Public)}).Validate(); err != nil {
		t.Errorf("valid WireGuard keys: %v", err)
	}
	msg := (&CorruptSecretError{Name: "ns/s", Err: errors.New("a\nb")}).Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "kubectl stage init") {
		t.Errorf("message %q", msg)
	}
}
