package token

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
)

func TestNewTokenAndSecret(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tok, err := New(24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	if !bootstraputil.IsValidBootstrapToken(tok.String()) {
		t.Fatalf("%q is not a valid bootstrap token", tok.String())
	}
	s := tok.SecretFor("tokyo-1")
	want := map[string]string{
		"token-id": tok.ID, "token-secret": tok.Secret, "expiration": "2026-11-25T12:00:00Z",
		"usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
		"auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
	}
	for k, v := range want {
		if s.StringData[k] != v {
			t.Errorf("%s = %q, want %q", k, s.StringData[k], v)
		}
	}
	if s.Name != "bootstrap-token-"+tok.ID || s.Namespace != "kube-system" || s.Type != "bootstrap.kubernetes.io/token" {
		t.Errorf("secret %s/%s type %s", s.Namespace, s.Name, s.Type)
	}
	if _, err := New(0, now); err == nil {
		t.Error("zero TTL accepted")
	}
}

func TestStatusOf(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	secret := func(exp string) *corev1.Secret {
		return &corev1.Secret{Data: map[string][]byte{"token-id": []byte("abcdef"), "expiration": []byte(exp)}}
	}
	tests := []struct {
		name        string
		secret      *corev1.Secret
		wantExpired bool
		wantErr     string
	}{
		{"valid", secret("2026-11-25T00:00:00Z"), false, ""},
		{"expired", secret("2026-11-24T11:59:59Z"), true, ""},
		{"unreadable expiry", secret("tomorrow"), false, "unreadable expiration"},
		{"bad id", &corev1.Secret{Data: map[string][]byte{"token-id": []byte("X")}}, false, "no valid bootstrap token id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, err := StatusOf(tt.secret, now)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || st.Expired != tt.wantExpired {
				t.Errorf("= %+v, %v; want expired=%v", st, err, tt.wantExpired)
			}
		})
	}
}

// TestDiscoveryHashMatchesKubeadm checks the hash against the definition
// kubeadm's pubkeypin.Hash uses: SHA-256 over RawSubjectPublicKeyInfo.
func TestDiscoveryHashMatchesKubeadm(t *testing.T) {
	ca, err := pki.NewCA("kubernetes", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(ca.Cert.RawSubjectPublicKeyInfo)
	if got, want := DiscoveryHash(ca.Cert), "sha256:"+hex.EncodeToString(sum[:]); got != want {
		t.Errorf("DiscoveryHash = %s, want %s", got, want)
	}
}
