package pki

import (
	"crypto/x509"
	"net"
	"strings"
	"testing"
	"time"
)

func TestIssueVerifiesAgainstCA(t *testing.T) {
	ca, err := NewCA("stage-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)

	tests := []struct {
		name    string
		req     Request
		verify  x509.VerifyOptions
		wantErr string
	}{
		{
			name:   "server with IP and DNS names",
			req:    Request{CommonName: "hub", DNSNames: []string{"hub.example"}, IPs: []net.IP{net.ParseIP("10.23.0.1")}, Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
			verify: x509.VerifyOptions{DNSName: "10.23.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		},
		{
			name:   "client",
			req:    Request{CommonName: "node-1", Organization: []string{"site:tokyo"}, Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			verify: x509.VerifyOptions{KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
		},
		{
			name:    "no common name",
			req:     Request{Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}},
			wantErr: "needs a common name",
		},
		{
			name:    "no usage",
			req:     Request{CommonName: "x", Validity: time.Hour},
			wantErr: "needs an extended key usage",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kp, err := ca.Issue(tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.verify.Roots = roots
			if _, err := kp.Cert.Verify(tt.verify); err != nil {
				t.Errorf("certificate does not verify: %v", err)
			}
			keyPEM, err := kp.KeyPEM()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseKeyPair(kp.CertificatePEM(), keyPEM)
			if err != nil {
				t.Fatalf("PEM round trip: %v", err)
			}
			if !back.Cert.Equal(kp.Cert) {
				t.Error("PEM round trip changed the certificate")
			}
		})
	}
}

func TestIssueNeverOutlivesCA(t *testing.T) {
	ca, err := NewCA("short-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := ca.Issue(Request{CommonName: "long", Validity: 24 * 365 * time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		t.Fatal(err)
	}
	if kp.Cert.NotAfter.After(ca.Cert.NotAfter) {
		t.Errorf("leaf expires %v, after its CA %v", kp.Cert.NotAfter, ca.Cert.NotAfter)
	}
}

func TestParseKeyPairRejectsMismatch(t *testing.T) {
	a, _ := NewCA("a", time.Hour)
	b, _ := NewCA("b", time.Hour)
	keyB, _ := b.KeyPEM()
	if _, err := ParseKeyPair(a.CertificatePEM(), keyB); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("mismatched key accepted: %v", err)
	}
	if _, err := ParseKeyPair([]byte("garbage"), keyB); err == nil {
		t.Error("garbage certificate accepted")
	}
	leaf, _ := a.Issue(Request{CommonName: "leaf", Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if _, err := leaf.Issue(Request{CommonName: "x", Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("a leaf certificate signed another")
	}
}
