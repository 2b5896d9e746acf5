package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/pkg/pki"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
)

// BenchmarkWebhookHTTPS sends AdmissionReviews to the real webhook server
// over HTTPS on loopback at a fixed 1,000 requests/s for 5 s and reports
// the latency percentiles.
func BenchmarkWebhookHTTPS(b *testing.B) {
	cp := harness.StartForTest(b, harness.All())
	if _, err := cp.AddNode(context.Background(), harness.Node{Name: "tokyo-1", Site: "tokyo", InternalIP: "10.23.0.2"}); err != nil {
		b.Fatal(err)
	}
	url, caPEM := startWebhook(b, cp)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}

	pod := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "load", Namespace: "default", Labels: map[string]string{"app": "load", api.LabelInject: api.LabelInjectValue}},
		Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "x"}}}, // reachable at the node IP
	}
	raw, _ := json.Marshal(pod)
	review, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: "default", Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw}},
	})

	// One client, one request at a time: the webhook's own latency.
	var sequential []time.Duration
	for i := 0; i < 500; i++ {
		start := time.Now()
		resp, err := client.Post(url, "application/json", bytes.NewReader(review))
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("request failed: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		sequential = append(sequential, time.Since(start))
	}
	slices.Sort(sequential)

	const rate, seconds = 1000, 5
	var mu sync.Mutex
	var latencies []time.Duration
	failures := 0
	b.ResetTimer()
	ticker := time.NewTicker(time.Second / rate)
	defer ticker.Stop()
	var wg sync.WaitGroup
	for i := 0; i < rate*seconds; i++ {
		<-ticker.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := client.Post(url, "application/json", bytes.NewReader(review))
			d := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || resp.StatusCode != http.StatusOK {
				failures++
				return
			}
			_ = resp.Body.Close()
			latencies = append(latencies, d)
		}()
	}
	wg.Wait()
	b.StopTimer()
	slices.Sort(latencies)
	if failures > 0 || len(latencies) == 0 {
		b.Fatalf("%d of %d requests failed", failures, rate*seconds)
	}
	p := func(q float64) float64 {
		return float64(latencies[int(q*float64(len(latencies)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(sequential[len(sequential)/2].Microseconds())/1000, "sequential-p50-ms")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(float64(len(latencies))/seconds, "req/s")
}

// BenchmarkPodCreationThroughput creates the same opted-in pods through the
// API server first without the webhook registered, then with it, and
// reports both rates and their ratio. On one 2-core machine the webhook,
// the API server, etcd and the client share the CPUs, which a cluster would
// not.
func BenchmarkPodCreationThroughput(b *testing.B) {
	ctx := context.Background()
	// The controller manager creates the namespace's default ServiceAccount,
	// which pod admission requires.
	cp := harness.StartForTest(b, harness.Options{ControllerManager: true})
	for _, s := range []string{"tokyo", "osaka"} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: s + "-1", Labels: map[string]string{api.LabelSite: s}}}
		if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	createNamespace(b, cp, "load", nil)
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Client.CoreV1().ServiceAccounts("load").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	}); err != nil {
		b.Fatal("no default ServiceAccount in namespace load")
	}
	const pods, workers = 400, 8
	create := func(prefix string) float64 {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, pods)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < pods; i += workers {
					p := &corev1.Pod{
						ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s-%d", prefix, i), Labels: map[string]string{"app": "load", api.LabelInject: api.LabelInjectValue}},
						Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "x"}}}, // reachable at the node IP
					}
					if _, err := cp.Client.CoreV1().Pods("load").Create(ctx, p, metav1.CreateOptions{}); err != nil {
						errs <- err
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			b.Fatal(err)
		}
		return pods / time.Since(start).Seconds()
	}
	// The webhook runs (and watches its peers) in all phases; only the
	// registration differs. A do-nothing webhook on the same TLS stack
	// measures what any admission webhook costs on this machine.
	url, caPEM := startWebhook(b, cp)
	noopURL, noopCA := startNoopWebhook(b)
	b.ResetTimer()
	without := create("plain")
	registerWebhook(b, cp, noopURL, noopCA)
	noop := create("noop")
	if err := cp.Client.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "kubectl-stage", metav1.DeleteOptions{}); err != nil {
		b.Fatal(err)
	}
	registerWebhook(b, cp, url, caPEM)
	with := create("mutated")
	b.StopTimer()
	b.ReportMetric(noop/without, "ratio-noop-webhook")
	got, err := cp.Client.CoreV1().Pods("load").Get(ctx, "mutated-0", metav1.GetOptions{})
	if err != nil || len(got.Spec.Containers[0].Env) == 0 {
		b.Fatalf("the webhook did not mutate the measured pods: %v", err)
	}
	// How long each webhook call took as the API server saw it.
	if raw, err := cp.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx); err == nil {
		var sum, count float64
		for _, line := range strings.Split(string(raw), "\n") {
			fields := strings.Fields(line)
			switch {
			case len(fields) != 2:
			case strings.HasPrefix(line, "apiserver_admission_webhook_admission_duration_seconds_sum"):
				sum, _ = strconv.ParseFloat(fields[1], 64)
			case strings.HasPrefix(line, "apiserver_admission_webhook_admission_duration_seconds_count"):
				count, _ = strconv.ParseFloat(fields[1], 64)
			}
		}
		if count > 0 {
			b.ReportMetric(sum/count*1000, "apiserver-webhook-ms")
		}
	}
	b.ReportMetric(without, "pods/s-without")
	b.ReportMetric(with, "pods/s-with")
	b.ReportMetric(with/without, "ratio")
}

// startNoopWebhook serves AdmissionReviews by allowing them unchanged.
func startNoopWebhook(b *testing.B) (string, []byte) {
	b.Helper()
	ca, err := pki.NewCA("noop-ca", time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	serving, err := ca.Issue(pki.Request{CommonName: "noop", IPs: []net.IP{net.ParseIP("127.0.0.1")}, Validity: time.Hour, Usage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		b.Fatal(err)
	}
	key, _ := serving.KeyPEM()
	cert, err := tls.X509KeyPair(serving.CertificatePEM(), key)
	if err != nil {
		b.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
		review.Request = nil
		_ = json.NewEncoder(w).Encode(review)
	})}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "https://" + l.Addr().String() + "/", ca.CertificatePEM()
}
