package site

import (
	"bufio"
	"context"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/conflict"
	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
	"github.com/kubectl-stage/kubectl-stage/pkg/vpn"
)

// Keys of the hub Secret.
const (
	HubCertKey     = "hub.crt"
	HubKeyKey      = "hub.key"
	TLSCryptKey    = "tls-crypt.key"
	CRLKey         = "crl.pem"
	crlNumberKey   = "crl-number"
	revokedKey     = "revoked"
	WGPrivateKey   = "wireguard-private-key"
	WGPublicKeyKey = "wireguard-public-key"
)

// HubSecrets is the hub's credentials, as kept in the hub Secret.
type HubSecrets map[string][]byte

// ErrNoSecret means a Secret kubectl-stage expects is missing.
type ErrNoSecret struct{ Name, Namespace string }

func (e ErrNoSecret) Error() string {
	return fmt.Sprintf("secret %s/%s is missing: re-run `kubectl stage init` to recreate the VPN credentials", e.Namespace, e.Name)
}

func (s *Store) secrets() typedcorev1.SecretInterface {
	return s.Client.CoreV1().Secrets(s.Namespace)
}

// CreateSecretIfAbsent stores data under name unless the Secret exists; it
// reports whether it created it. Secrets are never overwritten, so that
// re-running init keeps the PKI every node already trusts.
func (s *Store) CreateSecretIfAbsent(ctx context.Context, name string, typ corev1.SecretType, data map[string][]byte) (bool, error) {
	secret := &corev1.Secret{ObjectMeta: s.meta(name, nil), Type: typ, Data: data}
	_, err := s.secrets().Create(ctx, secret, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return false, nil
	}
	return err == nil, err
}

// SecretData returns a Secret's data.
func (s *Store) SecretData(ctx context.Context, name string) (map[string][]byte, error) {
	secret, err := s.secrets().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, ErrNoSecret{Name: name, Namespace: s.Namespace}
	}
	if err != nil {
		return nil, err
	}
	return secret.Data, nil
}

// VPNCA returns the OpenVPN certificate authority.
func (s *Store) VPNCA(ctx context.Context) (*pki.KeyPair, error) {
	data, err := s.SecretData(ctx, api.VPNCAName)
	if err != nil {
		return nil, err
	}
	ca, err := pki.ParseKeyPair(data[corev1.TLSCertKey], data[corev1.TLSPrivateKeyKey])
	if err != nil {
		return nil, fmt.Errorf("secret %s/%s: %w", s.Namespace, api.VPNCAName, err)
	}
	return ca, nil
}

// Hub returns the hub's credentials.
func (s *Store) Hub(ctx context.Context) (HubSecrets, error) {
	data, err := s.SecretData(ctx, api.VPNHubName)
	if err != nil {
		return nil, err
	}
	if err := HubSecrets(data).Validate(); err != nil {
		return nil, &CorruptSecretError{Name: s.Namespace + "/" + api.VPNHubName, Err: err}
	}
	return HubSecrets(data), nil
}

// RevokeCertificate adds serial to the OpenVPN revocation list and re-signs
// the CRL in the hub Secret. Revoking a serial twice changes nothing.
func (s *Store) RevokeCertificate(ctx context.Context, ca *pki.KeyPair, serial string, now time.Time) error {
	return conflict.Retry(ctx, "secret "+s.Namespace+"/"+api.VPNHubName, func() error {
		secret, err := s.secrets().Get(ctx, api.VPNHubName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return ErrNoSecret{Name: api.VPNHubName, Namespace: s.Namespace}
		}
		if err != nil {
			return err
		}
		revoked, err := parseRevoked(string(secret.Data[revokedKey]))
		if err != nil {
			return fmt.Errorf("secret %s/%s: %w", s.Namespace, api.VPNHubName, err)
		}
		for _, r := range revoked {
			if r.Serial.Text(16) == serial {
				return nil
			}
		}
		n, ok := new(big.Int).SetString(serial, 16)
		if !ok {
			return fmt.Errorf("invalid certificate serial %q", serial)
		}
		revoked = append(revoked, vpn.Revoked{Serial: n, RevokedAt: now.UTC().Truncate(time.Second)})
		number, _ := strconv.ParseInt(string(secret.Data[crlNumberKey]), 10, 64)
		crl, err := vpn.CRL(ca, revoked, number+1)
		if err != nil {
			return err
		}
		secret.Data[CRLKey] = crl
		secret.Data[crlNumberKey] = []byte(strconv.FormatInt(number+1, 10))
		secret.Data[revokedKey] = []byte(formatRevoked(revoked))
		_, err = s.secrets().Update(ctx, secret, metav1.UpdateOptions{})
		return err
	})
}

// InitialCRL is the empty, signed CRL init stores (OpenVPN needs a valid one).
func InitialCRL(ca *pki.KeyPair) (map[string][]byte, error) {
	crl, err := vpn.CRL(ca, nil, 1)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{CRLKey: crl, crlNumberKey: []byte("1"), revokedKey: {}}, nil
}

func parseRevoked(text string) ([]vpn.Revoked, error) {
	var out []vpn.Revoked
	scanner := bufio.NewScanner(strings.NewReader(text))
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) == 0 {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("revocation list line %q: want \"SERIAL UNIX-TIME\"", scanner.Text())
		}
		serial, ok := new(big.Int).SetString(fields[0], 16)
		if !ok {
			return nil, fmt.Errorf("revocation list: invalid serial %q", fields[0])
		}
		at, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("revocation list: invalid time %q", fields[1])
		}
		out = append(out, vpn.Revoked{Serial: serial, RevokedAt: time.Unix(at, 0).UTC()})
	}
	return out, scanner.Err()
}

func formatRevoked(revoked []vpn.Revoked) string {
	var b strings.Builder
	for _, r := range revoked {
		fmt.Fprintf(&b, "%s %d\n", r.Serial.Text(16), r.RevokedAt.Unix())
	}
	return b.String()
}
