// Package token creates kubeadm-compatible bootstrap tokens and computes the
// discovery hash kubeadm pins the cluster CA with.
package token

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	bootstraputil "k8s.io/cluster-bootstrap/token/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
)

// Token is a bootstrap token: "<id>.<secret>".
type Token struct {
	ID      string
	Secret  string
	Expires time.Time
}

// String is the token as kubeadm takes it. It is a credential: print it only
// when the user asked for it.
func (t Token) String() string { return t.ID + "." + t.Secret }

// New generates a token that expires after ttl.
func New(ttl time.Duration, now time.Time) (Token, error) {
	if ttl <= 0 {
		return Token{}, fmt.Errorf("token TTL must be positive, got %s", ttl)
	}
	raw, err := bootstraputil.GenerateBootstrapToken()
	if err != nil {
		return Token{}, err
	}
	id, secret, _ := strings.Cut(raw, ".")
	return Token{ID: id, Secret: secret, Expires: now.Add(ttl).UTC().Truncate(time.Second)}, nil
}

// SecretFor is the bootstrap-token-<id> Secret in kube-system, as `kubeadm token
// create` writes it: usable for authentication (as system:bootstrap:<id> in
// the kubeadm node group) and for signing cluster-info.
func (t Token) SecretFor(node string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      bootstraputil.BootstrapTokenSecretName(t.ID),
			Namespace: metav1.NamespaceSystem,
			Labels:    map[string]string{api.LabelManagedBy: api.LabelManagedByValue},
		},
		Type: bootstrapapi.SecretTypeBootstrapToken,
		StringData: map[string]string{
			bootstrapapi.BootstrapTokenDescriptionKey:      api.TokenDescriptionPrefix + node,
			bootstrapapi.BootstrapTokenIDKey:               t.ID,
			bootstrapapi.BootstrapTokenSecretKey:           t.Secret,
			bootstrapapi.BootstrapTokenExpirationKey:       t.Expires.Format(time.RFC3339),
			bootstrapapi.BootstrapTokenUsageAuthentication: "true",
			bootstrapapi.BootstrapTokenUsageSigningKey:     "true",
			bootstrapapi.BootstrapTokenExtraGroupsKey:      api.KubeadmNodeTokenGroup,
		},
	}
}

// Status describes a stored bootstrap token without its secret.
type Status struct {
	ID      string
	Expires time.Time
	Expired bool
}

// StatusOf reads a bootstrap-token Secret.
func StatusOf(s *corev1.Secret, now time.Time) (Status, error) {
	id := string(s.Data[bootstrapapi.BootstrapTokenIDKey])
	if !bootstraputil.IsValidBootstrapTokenID(id) {
		return Status{}, fmt.Errorf("secret %s/%s holds no valid bootstrap token id", s.Namespace, s.Name)
	}
	st := Status{ID: id}
	if exp := string(s.Data[bootstrapapi.BootstrapTokenExpirationKey]); exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil {
			return Status{}, fmt.Errorf("bootstrap token %q has an unreadable expiration %q: %w", id, exp, err)
		}
		st.Expires = t
		st.Expired = !now.Before(t)
	}
	return st, nil
}

// DiscoveryHash is what `kubeadm join --discovery-token-ca-cert-hash` takes:
// "sha256:" and the hex SHA-256 of the CA's Subject Public Key Info.
func DiscoveryHash(ca *x509.Certificate) string {
	sum := sha256.Sum256(ca.RawSubjectPublicKeyInfo)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// ClusterCAFromClusterInfo returns the CA certificate and API server address
// published in the kube-public/cluster-info ConfigMap that `kubeadm init`
// creates and that kubeadm's token discovery reads.
func ClusterCAFromClusterInfo(cm *corev1.ConfigMap) (*x509.Certificate, string, error) {
	raw, ok := cm.Data[bootstrapapi.KubeConfigKey]
	if !ok {
		return nil, "", errors.New("kube-public/cluster-info has no kubeconfig key")
	}
	cfg, err := clientcmd.Load([]byte(raw))
	if err != nil {
		return nil, "", fmt.Errorf("kube-public/cluster-info holds an unreadable kubeconfig: %w", err)
	}
	for _, cluster := range cfg.Clusters {
		certs, err := certutil.ParseCertsPEM(cluster.CertificateAuthorityData)
		if err != nil {
			return nil, "", fmt.Errorf("kube-public/cluster-info CA: %w", err)
		}
		return certs[0], cluster.Server, nil
	}
	return nil, "", errors.New("kube-public/cluster-info kubeconfig has no cluster")
}
