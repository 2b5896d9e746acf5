package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/kubectl-stage/kubectl-stage/pkg/api"
	"github.com/kubectl-stage/kubectl-stage/test/harness"
	stagewebhook "github.com/kubectl-stage/kubectl-stage/webhook"
)

// BenchmarkWebhookHTTPS sends AdmissionReviews over HTTPS on loopback at a
// fixed 1,000 requests/s for 5 s, to the real webhook and, in the same run,
// to a do-nothing handler on the same TLS stack (controller-runtime's
// webhook server with the same options), and reports the latency
// percentiles of both.
func BenchmarkWebhookHTTPS(b *testing.B) {
	cp := harness.StartForTest(b, harness.All())
	if _, err := cp.AddNode(context.Background(), harness.Node{Name: "tokyo-1", Site: "tokyo", InternalIP: "10.23.0.2"}); err != nil {
		b.Fatal(err)
	}
	url, caPEM := startWebhook(b, cp)
	noopURL, noopCA := startNoopOnSameStack(b)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	roots.AppendCertsFromPEM(noopCA)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}

	review := reviewOf(loadPod("default", "load", nil))
	post := func(url string) func() error {
		return func() error {
			_, err := admit(client, url, review)
			return err
		}
	}
	b.ResetTimer()
	noop, ours := alternate(b, post(noopURL), post(url))
	b.StopTimer()
	b.ReportMetric(percentile(noop, 0.50), "noop-p50-ms")
	b.ReportMetric(percentile(noop, 0.99), "noop-p99-ms")
	b.ReportMetric(percentile(ours, 0.50), "p50-ms")
	b.ReportMetric(percentile(ours, 0.99), "p99-ms")
}

// startNoopOnSameStack serves a do-nothing admission handler on
// controller-runtime's webhook server, as the webhook's own (TLS 1.2 or
// later, certificates from a directory), and returns its URL and CA.
func startNoopOnSameStack(b *testing.B) (string, []byte) {
	return startOnSameStack(b, func(context.Context, admission.Request) admission.Response { return admission.Allowed("") })
}

// startOnSameStack serves handler as startNoopOnSameStack does.
func startOnSameStack(b *testing.B, handler admission.HandlerFunc) (string, []byte) {
	b.Helper()
	caPEM, certPEM, keyPEM := loopbackServingCert(b)
	port := harness.FreePort(b)
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir(b, certPEM, keyPEM),
		TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.MinVersion = tls.VersionTLS12 }}})
	srv.Register("/noop", &admission.Webhook{Handler: handler})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return srv.StartedChecker()(nil) == nil, nil
	}); err != nil {
		b.Fatal("the do-nothing webhook never started")
	}
	return fmt.Sprintf("https://127.0.0.1:%d/noop", port), caPEM
}

// loadPod is an opted-in pod on the host network (so that its node's IP
// reaches it), as the load benchmarks create it.
func loadPod(namespace, name string, labels map[string]string) *corev1.Pod {
	all := map[string]string{"app": "load", api.LabelInject: api.LabelInjectValue}
	maps.Copy(all, labels)
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: all},
		Spec:       corev1.PodSpec{HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
	}
}

// reviewOf is the AdmissionReview the API server sends for creating pod.
func reviewOf(pod *corev1.Pod) []byte {
	raw, _ := json.Marshal(pod)
	review, _ := json.Marshal(admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{UID: "u", Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource: metav1.GroupVersionResource{Version: "v1", Resource: "pods"}, Namespace: pod.Namespace, Operation: admissionv1.Create,
			Object: runtime.RawExtension{Raw: raw}},
	})
	return review
}

// admit posts review to the webhook at url and returns its answer, which
// must allow the pod.
func admit(client *http.Client, url string, review []byte) (*admissionv1.AdmissionResponse, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(review))
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	var answer admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil || answer.Response == nil || !answer.Response.Allowed {
		return nil, fmt.Errorf("%s: no allowed answer (%v)", resp.Status, err)
	}
	return answer.Response, nil
}

// constantRate calls do at rate per second for d, each call in its own
// goroutine (an open-loop load: a slow answer does not slow the sender),
// and returns the latencies, sorted. Any failure fails the benchmark.
func constantRate(b *testing.B, rate int, d time.Duration, do func() error) []time.Duration {
	b.Helper()
	var mu sync.Mutex
	var latencies []time.Duration
	var failures []error
	ticker := time.NewTicker(time.Second / time.Duration(rate))
	defer ticker.Stop()
	var wg sync.WaitGroup
	for range int(d.Seconds() * float64(rate)) {
		<-ticker.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			err := do()
			took := time.Since(start)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failures = append(failures, err)
				return
			}
			latencies = append(latencies, took)
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		b.Fatalf("%d of %d requests failed, first: %v", len(failures), len(failures)+len(latencies), failures[0])
	}
	slices.Sort(latencies)
	return latencies
}

// alternate loads the baseline and ours at 1,000 requests/s in turns of a
// second, 5 s each, so that whatever else the machine does weighs on both
// alike; it returns both latencies, sorted.
func alternate(b *testing.B, baseline, ours func() error) (base, mine []time.Duration) {
	b.Helper()
	for range 5 {
		base = append(base, constantRate(b, 1000, time.Second, baseline)...)
		mine = append(mine, constantRate(b, 1000, time.Second, ours)...)
	}
	slices.Sort(base)
	slices.Sort(mine)
	return base, mine
}

// percentile is the q-quantile of sorted latencies, in milliseconds.
func percentile(sorted []time.Duration, q float64) float64 {
	return float64(sorted[int(q*float64(len(sorted)-1))].Microseconds()) / 1000
}

// BenchmarkSeedEndpoint asks the seed endpoint of the real webhook for an
// app of 300 ready peers (kwok pods at three sites) at 1,000 requests/s
// for 5 s, each with its own key, and, in the same run, a do-nothing HTTP
// handler; it reports the latency percentiles of both.
func BenchmarkSeedEndpoint(b *testing.B) {
	ctx := context.Background()
	cp := harness.StartForTest(b, harness.All())
	for i, site := range sites {
		if _, err := cp.AddNode(ctx, harness.Node{Name: site + "-1", Site: site, InternalIP: fmt.Sprintf("10.23.0.%d", i+2)}); err != nil {
			b.Fatal(err)
		}
	}
	seedsAddr := fmt.Sprintf("127.0.0.1:%d", harness.FreePort(b))
	_, certPEM, keyPEM := loopbackServingCert(b)
	serveWebhook(b, cp, harness.FreePort(b), certPEM, keyPEM, stagewebhook.Options{SeedsAddr: seedsAddr})
	createNamespace(b, cp, "load", nil)
	const peers = 300
	for i := range peers {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("load-%d", i), Labels: map[string]string{api.LabelApp: "load"},
				Annotations: map[string]string{api.AnnotationPort: "7946"}},
			Spec: corev1.PodSpec{NodeName: sites[i%len(sites)] + "-1", HostNetwork: true, Containers: []corev1.Container{{Name: "c", Image: "x"}}},
		}
		if _, err := cp.Client.CoreV1().Pods("load").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	url := "http://" + seedsAddr + "/seeds/load/load"
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		defer func() { _ = resp.Body.Close() }()
		var list stagewebhook.SeedList
		return json.NewDecoder(resp.Body).Decode(&list) == nil && list.ReadyPeers == peers, nil
	}); err != nil {
		b.Fatalf("the endpoint never listed %d ready peers", peers)
	}
	noop := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("10.23.0.2:7946\n")) }))
	defer noop.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}
	var n atomic.Int64
	get := func(base string) func() error {
		return func() error {
			resp, err := client.Get(fmt.Sprintf("%s?site=tokyo&n=10&key=peer-%d&format=text", base, n.Add(1)))
			if err != nil {
				return err
			}
			defer func() { _ = resp.Body.Close() }()
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK || len(body) == 0 {
				return fmt.Errorf("%s: %v %q", resp.Status, err, body)
			}
			return nil
		}
	}
	b.ResetTimer()
	base, ours := alternate(b, get(noop.URL+"/seeds/load/load"), get(url))
	b.StopTimer()
	b.ReportMetric(percentile(base, 0.50), "noop-p50-ms")
	b.ReportMetric(percentile(base, 0.99), "noop-p99-ms")
	b.ReportMetric(percentile(ours, 0.50), "p50-ms")
	b.ReportMetric(percentile(ours, 0.99), "p99-ms")
}

// BenchmarkPodCreationThroughput creates opted-in pods through the API
// server in rounds: with no webhook, through a do-nothing webhook on the
// same TLS stack, and through the stage webhook (each its own
// MutatingWebhookConfiguration, chosen by a label of the pod, so nothing
// is re-registered between rounds and every phase sees the same machine),
// and reports the rates, their ratios and each webhook's latency as the
// API server saw it. On one 2-core machine the webhooks, the API server,
// etcd and the client share the CPUs, which a cluster would not.
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
	url, caPEM := startWebhook(b, cp)
	noopURL, noopCA := startNoopOnSameStack(b)
	// A webhook that answers every pod with the patch the stage webhook
	// gives: what the mutation costs the API server, apart from the work of
	// the webhook itself.
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 5 * time.Second}
	answer, err := admit(client, url, reviewOf(loadPod("load", "replayed", nil)))
	if err != nil || len(answer.Patch) == 0 {
		b.Fatalf("the stage webhook gave no patch to replay: %v", err)
	}
	var patch []jsonpatch.JsonPatchOperation
	if err := json.Unmarshal(answer.Patch, &patch); err != nil {
		b.Fatal(err)
	}
	replayURL, replayCA := startOnSameStack(b, func(context.Context, admission.Request) admission.Response {
		return admission.Patched("", patch...)
	})
	registerWebhook(b, cp, "noop", noopURL, noopCA, map[string]string{"bench": "noop"})
	registerWebhook(b, cp, "replay", replayURL, replayCA, map[string]string{"bench": "replay"})
	registerWebhook(b, cp, "stage", url, caPEM, map[string]string{"bench": "stage"})

	const rounds, perRound, workers = 4, 100, 8
	elapsed := map[string]time.Duration{}
	create := func(kind string, round int) {
		start := time.Now()
		var wg sync.WaitGroup
		errs := make(chan error, perRound)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < perRound; i += workers {
					p := loadPod("load", fmt.Sprintf("%s-%d-%d", kind, round, i), map[string]string{"bench": kind})
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
		elapsed[kind] += time.Since(start)
	}
	b.ResetTimer()
	for round := range rounds {
		for _, kind := range []string{"plain", "noop", "replay", "stage"} {
			create(kind, round)
		}
	}
	b.StopTimer()
	for kind, want := range map[string]int{"noop": 0, "replay": 1, "stage": 1} {
		got, err := cp.Client.CoreV1().Pods("load").Get(ctx, kind+"-0-0", metav1.GetOptions{})
		if err != nil || (got.Labels[api.LabelApp] != "") != (want == 1) {
			b.Fatalf("%s-0-0 was not admitted as its phase says (app label %q): %v", kind, got.Labels[api.LabelApp], err)
		}
	}
	rate := func(kind string) float64 { return rounds * perRound / elapsed[kind].Seconds() }
	b.ReportMetric(rate("plain"), "pods/s-without")
	b.ReportMetric(rate("noop"), "pods/s-noop")
	b.ReportMetric(rate("stage"), "pods/s-with")
	b.ReportMetric(rate("noop")/rate("plain"), "ratio-noop-vs-none")
	b.ReportMetric(rate("replay"), "pods/s-replay")
	b.ReportMetric(rate("stage")/rate("noop"), "ratio-vs-noop-webhook")
	b.ReportMetric(rate("stage")/rate("replay"), "ratio-vs-replay-webhook")
	// How long each webhook call took as the API server saw it.
	raw, err := cp.Client.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for _, kind := range []string{"noop", "replay", "stage"} {
		var sum, count float64
		for _, line := range strings.Split(string(raw), "\n") {
			fields := strings.Fields(line)
			if len(fields) != 2 || !strings.Contains(line, `name="`+kind+`.bench.kubectl-stage.io"`) {
				continue
			}
			v, _ := strconv.ParseFloat(fields[1], 64)
			switch {
			case strings.HasPrefix(line, "apiserver_admission_webhook_admission_duration_seconds_sum"):
				sum += v
			case strings.HasPrefix(line, "apiserver_admission_webhook_admission_duration_seconds_count"):
				count += v
			}
		}
		if count > 0 {
			b.ReportMetric(sum/count*1000, "apiserver-"+kind+"-ms")
		}
	}
}
