// Package pki issues the X.509 material kubectl-stage needs: certificate
// authorities and the certificates they sign (VPN hub and nodes, webhook
// serving certificates, test control planes). Keys are ECDSA P-256: small,
// fast, and accepted by OpenVPN, Go's TLS stack and the Kubernetes API server.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"time"
)

// clockSkew backdates NotBefore so that a peer whose clock runs slightly
// behind still accepts a certificate issued a moment ago.
const clockSkew = 5 * time.Minute

// KeyPair is a certificate with its private key.
type KeyPair struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// CertificatePEM returns the certificate in PEM form.
func (kp *KeyPair) CertificatePEM() []byte { return EncodeCertificate(kp.Cert) }

// KeyPEM returns the private key in PEM form (PKCS#8).
func (kp *KeyPair) KeyPEM() ([]byte, error) { return EncodePrivateKey(kp.Key) }

// Request describes a certificate to issue.
type Request struct {
	CommonName   string
	Organization []string
	DNSNames     []string
	IPs          []net.IP
	Validity     time.Duration
	// Usage is x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth or both.
	Usage []x509.ExtKeyUsage
}

// NewCA creates a self-signed certificate authority.
func NewCA(commonName string, validity time.Duration) (*KeyPair, error) {
	key, serial, err := newKeyAndSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		SubjectKeyId:          subjectKeyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating CA certificate %q: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// Issue signs a new leaf certificate for req with the CA ca.
func (ca *KeyPair) Issue(req Request) (*KeyPair, error) {
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("certificate %q is not a CA", ca.Cert.Subject.CommonName)
	}
	if req.CommonName == "" {
		return nil, errors.New("certificate request needs a common name")
	}
	if len(req.Usage) == 0 {
		return nil, fmt.Errorf("certificate request %q needs an extended key usage", req.CommonName)
	}
	key, serial, err := newKeyAndSerial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	notAfter := now.Add(req.Validity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: req.CommonName, Organization: req.Organization},
		DNSNames:       req.DNSNames,
		IPAddresses:    req.IPs,
		NotBefore:      now.Add(-clockSkew),
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		ExtKeyUsage:    req.Usage,
		AuthorityKeyId: ca.Cert.SubjectKeyId,
		SubjectKeyId:   subjectKeyID(&key.PublicKey),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("signing certificate %q: %w", req.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// NewPrivateKey returns a fresh ECDSA P-256 key.
func NewPrivateKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// EncodeCertificate returns cert as a PEM "CERTIFICATE" block.
func EncodeCertificate(cert *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

// EncodePrivateKey returns key as a PEM "PRIVATE KEY" (PKCS#8) block.
func EncodePrivateKey(key crypto.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// EncodePublicKey returns pub as a PEM "PUBLIC KEY" (PKIX) block.
func EncodePublicKey(pub crypto.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// ParseKeyPair decodes a PEM certificate and its PEM PKCS#8 ECDSA key.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	cert, err := ParseCertificate(certPEM)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(keyPEM)
	if block == nil {
		return nil, errors.New("no PEM block found in private key")
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing private key: %w", err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("private key is %T, want an ECDSA key", parsed)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("private key does not match certificate %q", cert.Subject.CommonName)
	}
	return &KeyPair{Cert: cert, Key: key}, nil
}

// ParseCertificate decodes the first PEM certificate in data.
func ParseCertificate(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate found")
	}
	return x509.ParseCertificate(block.Bytes)
}

// newKeyAndSerial returns a fresh key and a random 127-bit serial number.
func newKeyAndSerial() (*ecdsa.PrivateKey, *big.Int, error) {
	key, err := NewPrivateKey()
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, err
	}
	return key, serial, nil
}

func subjectKeyID(pub *ecdsa.PublicKey) []byte {
	der, _ := x509.MarshalPKIXPublicKey(pub)
	sum := sha256.Sum256(der)
	return sum[:20]
}
