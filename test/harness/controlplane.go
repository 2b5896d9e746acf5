// Package harness starts a real Kubernetes control plane for tests and the
// local demo: etcd, kube-apiserver (HTTPS, client-certificate auth, RBAC,
// bootstrap tokens), and on request kube-scheduler, kube-controller-manager
// and kwok, which plays the kubelets of simulated nodes at several sites.
package harness

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
)

const (
	// ServiceCIDR is the cluster's service range; PodCIDR is where kwok
	// hands out pod IPs. Neither overlaps kubectl-stage's default overlay
	// (10.23.0.0/16), as in a real staging cluster.
	ServiceCIDR = "10.96.0.0/16"
	PodCIDR     = "10.244.0.0/16"

	startTimeout = 2 * time.Minute
	stopGrace    = 10 * time.Second
)

// Options chooses the components to run.
type Options struct {
	// Scheduler starts kube-scheduler, so pods get bound to nodes.
	Scheduler bool
	// ControllerManager starts kube-controller-manager (Deployments,
	// ReplicaSets, service accounts, bootstrap-token signing, CSR signing...).
	ControllerManager bool
	// Kwok starts kwok, which runs simulated nodes and their pods.
	Kwok bool
	// APIServerArgs are appended to kube-apiserver's flags ("--name=value").
	APIServerArgs []string
	// ServingIPs are extra addresses the API server certificate is valid for
	// (for example an overlay address).
	ServingIPs []net.IP
	// KwokStages are extra kwok configuration documents (YAML) added to the
	// default stages: Stages, and Logs or ClusterLogs, which make kwok serve
	// a file as a container's log.
	KwokStages []string
}

// All is the full control plane: API server, scheduler, controller manager and kwok.
func All() Options {
	return Options{Scheduler: true, ControllerManager: true, Kwok: true}
}

// ControlPlane is a running control plane.
type ControlPlane struct {
	// Dir holds certificates, kubeconfigs, etcd data and daemon logs.
	Dir string
	// Config is an admin (system:masters) client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file for Config.
	Kubeconfig string
	// CA signs the API server's serving certificate and client certificates;
	// it is the cluster CA kubeadm discovery pins.
	CA *pki.KeyPair
	// Client is a clientset for Config.
	Client kubernetes.Interface
	// Tools are the binaries in use.
	Tools Tools

	// apiServerURL is https://127.0.0.1:PORT.
	apiServerURL string
	// processes in start order; stopped in reverse.
	processes []*process
}

// URL is the API server's HTTPS endpoint.
func (cp *ControlPlane) URL() string { return cp.apiServerURL }

// Start runs the control plane chosen by opts and waits until every part of
// it is healthy. On error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *ControlPlane, err error) {
	tools, err := FindTools()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(tempBase(), "stage-controlplane-")
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Dir: dir, Tools: tools}
	defer func() {
		if err != nil {
			err = fmt.Errorf("%w%s", err, cp.logTails())
			cp.Stop()
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()

	if err := cp.writePKI(opts.ServingIPs); err != nil {
		return nil, err
	}
	etcdURL, err := cp.startEtcd(ctx)
	if err != nil {
		return nil, err
	}
	if err := cp.startAPIServer(ctx, etcdURL, opts.APIServerArgs); err != nil {
		return nil, err
	}
	if opts.ControllerManager {
		if err := cp.startControllerManager(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Scheduler {
		if err := cp.startScheduler(ctx); err != nil {
			return nil, err
		}
	}
	if opts.Kwok {
		if err := cp.startKwok(ctx, opts.KwokStages); err != nil {
			return nil, err
		}
	}
	return cp, nil
}

// Stop ends every daemon (newest first), waits for each to exit and removes
// the working folder. It is safe to call more than once.
func (cp *ControlPlane) Stop() {
	for i := len(cp.processes) - 1; i >= 0; i-- {
		_ = cp.processes[i].stop(stopGrace)
	}
	cp.processes = nil
	if cp.Dir != "" && os.Getenv("STAGE_KEEP_CONTROLPLANE_DIR") == "" {
		_ = os.RemoveAll(cp.Dir)
	}
}

// PIDs are the process ids of the running daemons, by name.
func (cp *ControlPlane) PIDs() map[string]int {
	pids := map[string]int{}
	for _, p := range cp.processes {
		pids[p.name] = p.pid()
	}
	return pids
}

// UserConfig returns a client configuration authenticated by a client
// certificate for user in groups, to exercise RBAC as a non-admin.
func (cp *ControlPlane) UserConfig(user string, groups ...string) (*rest.Config, error) {
	kp, err := cp.CA.Issue(pki.Request{
		CommonName: user, Organization: groups, Validity: 24 * time.Hour,
		Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	keyPEM, err := kp.KeyPEM()
	if err != nil {
		return nil, err
	}
	return &rest.Config{
		Host:            cp.apiServerURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA.CertificatePEM(), CertData: kp.CertificatePEM(), KeyData: keyPEM},
		QPS:             200, Burst: 400,
	}, nil
}

// ServiceAccountConfig returns a client configuration authenticated as
// the ServiceAccount namespace/name by a token from the TokenRequest API,
// as a pod running as it is: RBAC applies to it as in a cluster. The token
// is valid for validity. Bound to a pod (boundTo non-nil), it is the token
// the kubelet mounts in that pod, naming the pod's node.
func (cp *ControlPlane) ServiceAccountConfig(ctx context.Context, namespace, name string, validity time.Duration, boundTo *corev1.Pod) (*rest.Config, error) {
	seconds := int64(validity / time.Second)
	spec := authenticationv1.TokenRequestSpec{ExpirationSeconds: &seconds}
	if boundTo != nil {
		spec.BoundObjectRef = &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: boundTo.Name, UID: boundTo.UID}
	}
	token, err := cp.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{Spec: spec}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token of ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return &rest.Config{
		Host:            cp.apiServerURL,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.CA.CertificatePEM()},
		BearerToken:     token.Status.Token,
		QPS:             200, Burst: 400,
	}, nil
}

func tempBase() string {
	// etcd fsyncs every write; on tmpfs that costs nothing.
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "probe-"); err == nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

func (cp *ControlPlane) path(name string) string { return filepath.Join(cp.Dir, name) }

func (cp *ControlPlane) writePKI(extraIPs []net.IP) error {
	ca, err := pki.NewCA("kubernetes", 24*time.Hour)
	if err != nil {
		return err
	}
	cp.CA = ca
	serving, err := ca.Issue(pki.Request{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        append([]net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")}, extraIPs...),
		Validity:   24 * time.Hour,
		Usage:      []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return err
	}
	// What the API server presents to kubelets (logs, exec), as kubeadm's
	// apiserver-kubelet-client; system:masters passes the kubelets'
	// authorization webhook.
	kubeletClient, err := ca.Issue(pki.Request{
		CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}, Validity: 24 * time.Hour,
		Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return err
	}
	saKey, err := pki.NewPrivateKey()
	if err != nil {
		return err
	}
	files := map[string]func() ([]byte, error){
		"apiserver-kubelet-client.crt": func() ([]byte, error) { return kubeletClient.CertificatePEM(), nil },
		"apiserver-kubelet-client.key": kubeletClient.KeyPEM,
		"ca.crt":                       func() ([]byte, error) { return ca.CertificatePEM(), nil },
		"ca.key":                       ca.KeyPEM,
		"apiserver.crt":                func() ([]byte, error) { return serving.CertificatePEM(), nil },
		"apiserver.key":                serving.KeyPEM,
		"sa.key":                       func() ([]byte, error) { return pki.EncodePrivateKey(saKey) },
		"sa.pub":                       func() ([]byte, error) { return pki.EncodePublicKey(&saKey.PublicKey) },
	}
	for name, content := range files {
		data, err := content()
		if err != nil {
			return fmt.Errorf("encoding %s: %w", name, err)
		}
		if err := os.WriteFile(cp.path(name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (cp *ControlPlane) start(name, path string, args []string) (*process, error) {
	p, err := startProcess(name, path, args, cp.path(name+".log"))
	if err != nil {
		return nil, err
	}
	cp.processes = append(cp.processes, p)
	return p, nil
}

func (cp *ControlPlane) startEtcd(ctx context.Context) (string, error) {
	clientPort, err := freePort()
	if err != nil {
		return "", err
	}
	peerPort, err := freePort()
	if err != nil {
		return "", err
	}
	clientURL := "http://127.0.0.1:" + strconv.Itoa(clientPort)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(peerPort)
	p, err := cp.start("etcd", cp.Tools.Etcd, []string{
		"--name=default",
		"--data-dir=" + cp.path("etcd"),
		"--listen-client-urls=" + clientURL,
		"--advertise-client-urls=" + clientURL,
		"--listen-peer-urls=" + peerURL,
		"--initial-advertise-peer-urls=" + peerURL,
		"--initial-cluster=default=" + peerURL,
		"--log-level=warn",
	})
	if err != nil {
		return "", err
	}
	return clientURL, waitHealthy(ctx, p, http.DefaultClient, clientURL+"/health")
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, etcdURL string, extraArgs []string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	cp.apiServerURL = "https://127.0.0.1:" + strconv.Itoa(port)
	args := []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + cp.path("apiserver-certs"),
		"--tls-cert-file=" + cp.path("apiserver.crt"),
		"--tls-private-key-file=" + cp.path("apiserver.key"),
		"--client-ca-file=" + cp.path("ca.crt"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + cp.path("sa.pub"),
		"--service-account-signing-key-file=" + cp.path("sa.key"),
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--authorization-mode=Node,RBAC",
		"--enable-bootstrap-token-auth=true",
		"--allow-privileged=true",
		// A loopback address may not be a Service endpoint; nothing in the
		// harness reaches the API server through the kubernetes Service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
		// As kubeadm sets it: real kubelets are reached (logs, exec) at
		// their InternalIP, the overlay address, not their name.
		"--kubelet-preferred-address-types=InternalIP,ExternalIP,Hostname",
		"--kubelet-client-certificate=" + cp.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key=" + cp.path("apiserver-kubelet-client.key"),
		// Streaming lists need etcd >= 3.4.31; Debian's 3.4.23 lacks the
		// progress notifications, and clients would back off for tens of
		// seconds before falling back. Without the feature they list at once.
		"--feature-gates=WatchList=false",
	}
	p, err := cp.start("kube-apiserver", cp.Tools.KubeAPIServer, append(args, extraArgs...))
	if err != nil {
		return err
	}
	if err := cp.writeAdminKubeconfig(); err != nil {
		return err
	}
	httpClient, err := rest.HTTPClientFor(cp.Config)
	if err != nil {
		return err
	}
	if err := waitHealthy(ctx, p, httpClient, cp.apiServerURL+"/readyz"); err != nil {
		return err
	}
	cp.Client, err = kubernetes.NewForConfig(cp.Config)
	return err
}

func (cp *ControlPlane) writeAdminKubeconfig() error {
	admin, err := cp.UserConfig("kubernetes-admin", "system:masters")
	if err != nil {
		return err
	}
	cp.Config = admin
	cp.Kubeconfig = cp.path("admin.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["stage"] = &clientcmdapi.Cluster{Server: admin.Host, CertificateAuthorityData: admin.CAData}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: admin.CertData, ClientKeyData: admin.KeyData}
	cfg.Contexts["stage"] = &clientcmdapi.Context{Cluster: "stage", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "stage"
	return clientcmd.WriteToFile(*cfg, cp.Kubeconfig)
}

// componentArgs are the flags kube-scheduler and kube-controller-manager
// share: admin credentials, HTTPS health endpoint on a free port, no leader
// election (there is one of each).
func (cp *ControlPlane) componentArgs(port int) []string {
	return []string{
		"--kubeconfig=" + cp.Kubeconfig,
		"--authentication-kubeconfig=" + cp.Kubeconfig,
		"--authorization-kubeconfig=" + cp.Kubeconfig,
		"--bind-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + cp.path("component-certs"),
		"--leader-elect=false",
	}
}

func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	args := append(cp.componentArgs(port),
		// bootstrapsigner signs cluster-info for kubeadm discovery;
		// tokencleaner deletes expired bootstrap tokens. Both are off by
		// default in kube-controller-manager and on in kubeadm clusters.
		"--controllers=*,bootstrapsigner,tokencleaner",
		"--service-account-private-key-file="+cp.path("sa.key"),
		"--root-ca-file="+cp.path("ca.crt"),
		"--cluster-signing-cert-file="+cp.path("ca.crt"),
		"--cluster-signing-key-file="+cp.path("ca.key"),
		"--cluster-cidr="+PodCIDR,
		"--service-cluster-ip-range="+ServiceCIDR,
		"--allocate-node-cidrs=false",
	)
	p, err := cp.start("kube-controller-manager", cp.Tools.KubeControllerManager, args)
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, insecureHTTPClient(), fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
}

func (cp *ControlPlane) startScheduler(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := cp.start("kube-scheduler", cp.Tools.KubeScheduler, cp.componentArgs(port))
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, insecureHTTPClient(), fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
}

func (cp *ControlPlane) startKwok(ctx context.Context, extraStages []string) error {
	config := cp.Tools.KwokStages
	if len(extraStages) > 0 {
		defaults, err := os.ReadFile(cp.Tools.KwokStages)
		if err != nil {
			return err
		}
		config = cp.path("kwok-stages.yaml")
		all := string(defaults) + "\n---\n" + strings.Join(extraStages, "\n---\n")
		if err := os.WriteFile(config, []byte(all), 0o600); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := cp.start("kwok", cp.Tools.Kwok, []string{
		"--kubeconfig=" + cp.Kubeconfig,
		"--config=" + config,
		"--manage-all-nodes=false",
		"--manage-nodes-with-annotation-selector=" + KwokNodeAnnotation + "=fake",
		"--cidr=" + PodCIDR,
		"--node-lease-duration-seconds=40",
		"--server-address=127.0.0.1:" + strconv.Itoa(port),
		// Nodes advertise kwok's server as their kubelet endpoint, so the API
		// server reaches it for pods/log (Logs and ClusterLogs documents) on a
		// node whose InternalIP is 127.0.0.1.
		"--node-port=" + strconv.Itoa(port),
	})
	if err != nil {
		return err
	}
	return waitHealthy(ctx, p, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", port))
}

// waitHealthy polls url until it answers 200, failing early if the daemon exits.
func waitHealthy(ctx context.Context, p *process, client *http.Client, url string) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if done, waitErr := p.exited(); done {
			return false, fmt.Errorf("%s exited during start-up: %v", p.name, waitErr)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		return fmt.Errorf("waiting for %s at %s: %w", p.name, url, err)
	}
	return nil
}

// logTails is the end of every daemon's log, to explain a failed start.
func (cp *ControlPlane) logTails() string {
	var b strings.Builder
	for _, p := range cp.processes {
		data, err := os.ReadFile(p.logPath)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		fmt.Fprintf(&b, "\n--- last lines of %s ---\n%s", p.name, strings.Join(lines, "\n"))
	}
	return b.String()
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free loopback port: %w", err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
