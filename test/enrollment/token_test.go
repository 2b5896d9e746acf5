package enrollment

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	certificatesv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	bootstrapapi "k8s.io/cluster-bootstrap/token/api"
	"k8s.io/cluster-bootstrap/token/jws"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/token"
)

// TestBootstrapTokenWorksAsKubeadmDiscoveryExpects does what `kubeadm join`
// does with the bundle's token: anonymous cluster-info fetch, JWS signature
// check (signed by the controller manager's bootstrapsigner), CA pinning with
// the discovery hash, then authentication as a bootstrapper and a kubelet
// client CertificateSigningRequest.
func TestBootstrapTokenWorksAsKubeadmDiscoveryExpects(t *testing.T) {
	ctx := context.Background()
	cp := startCluster(t)
	mustStage(t, cp.Kubeconfig, "init", "--hub-endpoint", "198.18.0.1")
	res, err := enroll.New(cp.Client, nil).Join(ctx, enroll.JoinOptions{Site: "tokyo", Node: "tokyo-1"})
	if err != nil {
		t.Fatal(err)
	}
	id, secret, _ := strings.Cut(res.Bundle.Token, ".")

	// Discovery, step 1: anonymous and unverified, as kubeadm's first fetch.
	anonymous := kubernetes.NewForConfigOrDie(&rest.Config{Host: cp.URL(), TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	var clusterInfo *corev1.ConfigMap
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		cm, err := anonymous.CoreV1().ConfigMaps(metav1.NamespacePublic).Get(ctx, bootstrapapi.ConfigMapClusterInfo, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		clusterInfo = cm
		_, signed := cm.Data[bootstrapapi.JWSSignatureKeyPrefix+id]
		return signed, nil
	})
	if err != nil {
		t.Fatalf("cluster-info was never signed for token %s: %v", id, err)
	}
	// Step 2: the signature proves the cluster knows the token secret.
	kubeconfig := clusterInfo.Data[bootstrapapi.KubeConfigKey]
	if !jws.DetachedTokenIsValid(clusterInfo.Data[bootstrapapi.JWSSignatureKeyPrefix+id], kubeconfig, id, secret) {
		t.Fatal("cluster-info JWS signature does not verify with the bundle's token")
	}
	// Step 3: the CA it carries matches the hash pinned in the bundle.
	ca, server, err := token.ClusterCAFromClusterInfo(clusterInfo)
	if err != nil {
		t.Fatal(err)
	}
	if got := token.DiscoveryHash(ca); got != res.Bundle.CACertHash {
		t.Fatalf("cluster CA hash %s, bundle pins %s", got, res.Bundle.CACertHash)
	}
	if !strings.HasPrefix(res.Bundle.CACertHash, "sha256:") || len(res.Bundle.CACertHash) != len("sha256:")+64 {
		t.Errorf("hash %q is not in kubeadm's sha256:<hex> form", res.Bundle.CACertHash)
	}

	// TLS bootstrap: the token authenticates, now verified against the pinned CA.
	bootstrapper := kubernetes.NewForConfigOrDie(&rest.Config{
		Host: server, BearerToken: res.Bundle.Token,
		TLSClientConfig: rest.TLSClientConfig{CAData: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw})},
	})
	review, err := bootstrapper.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the token does not authenticate: %v", err)
	}
	if user := review.Status.UserInfo; user.Username != "system:bootstrap:"+id || !contains(user.Groups, "system:bootstrappers:kubeadm:default-node-token") {
		t.Errorf("token authenticates as %+v, want system:bootstrap:%s in kubeadm's node-token group", user, id)
	}
	csr, err := bootstrapper.CertificatesV1().CertificateSigningRequests().Create(ctx, kubeletCSR(t, "tokyo-1"), metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the bootstrapper cannot request a kubelet certificate: %v", err)
	}
	if csr.Spec.Username != "system:bootstrap:"+id {
		t.Errorf("CSR requested by %q", csr.Spec.Username)
	}

	// Revocation: leave deletes the token and it stops working at once.
	mustStage(t, cp.Kubeconfig, "leave", "tokyo-1")
	if err := waitUnauthorized(ctx, bootstrapper); err != nil {
		t.Errorf("the token still authenticates after leave: %v", err)
	}
}

// TestExpiredTokenIsRefusedAndExplained: the API server refuses an expired
// token, status says so, and the bundle's own check names the token, its
// expiry and the command that issues a new one.
func TestExpiredTokenIsRefusedAndExplained(t *testing.T) {
	ctx := context.Background()
	cp := startCluster(t)
	mustStage(t, cp.Kubeconfig, "init", "--hub-endpoint", "198.18.0.1")
	res, err := enroll.New(cp.Client, nil).Join(ctx, enroll.JoinOptions{Site: "osaka", Node: "osaka-1", TokenTTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	bundlePath := t.TempDir() + "/osaka-1.join.sh"
	if err := os.WriteFile(bundlePath, res.Script, 0o600); err != nil {
		t.Fatal(err)
	}
	// The token has a 2 s TTL: the API server refusing it is the moment it
	// has expired.
	cfg := rest.Config{Host: cp.URL(), BearerToken: res.Bundle.Token, TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA.CertificatePEM()}}
	if err := waitUnauthorized(ctx, kubernetes.NewForConfigOrDie(&cfg)); err != nil {
		t.Errorf("an expired token authenticated: %v", err)
	}
	// The controller manager's tokencleaner deletes expired tokens.
	state := mustStage(t, cp.Kubeconfig, "status", "-o", "jsonpath={.items[0].status.tokenState}")
	if state != v1alpha1.TokenExpired && state != v1alpha1.TokenDeleted {
		t.Errorf("status says the expired token is %q, want %s or %s", state, v1alpha1.TokenExpired, v1alpha1.TokenDeleted)
	}
	rec := res.Record

	check := runBundle(t, bundlePath, "check")
	for _, want := range []string{"bootstrap token " + rec.TokenID + " expired at", "kubectl stage leave osaka-1 && kubectl stage join osaka --node osaka-1"} {
		if !strings.Contains(check, want) {
			t.Errorf("bundle check output lacks %q:\n%s", want, check)
		}
	}
}

// waitUnauthorized waits for the API server to refuse client: its bootstrap
// token authenticator reads Secrets through an informer, so a deletion
// reaches it a moment later.
func waitUnauthorized(ctx context.Context, client kubernetes.Interface) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = client.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		return apierrors.IsUnauthorized(last), nil
	})
	if err != nil {
		return fmt.Errorf("last answer: %v", last)
	}
	return nil
}

func kubeletCSR(t *testing.T, node string) *certificatesv1.CertificateSigningRequest {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: "system:node:" + node, Organization: []string{"system:nodes"}},
	}, key)
	if err != nil {
		t.Fatal(err)
	}
	return &certificatesv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "node-csr-"},
		Spec: certificatesv1.CertificateSigningRequestSpec{
			Request:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}),
			SignerName: certificatesv1.KubeAPIServerClientKubeletSignerName,
			Usages:     []certificatesv1.KeyUsage{certificatesv1.UsageDigitalSignature, certificatesv1.UsageClientAuth},
		},
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
