package util

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
)

// AddDryRunFlag adds kubectl's --dry-run=none|client|server to a command
// that writes to the cluster. A bare --dry-run (join's flag before there
// were three modes) still means client, with kubectl's deprecation warning.
func AddDryRunFlag(cmd *cobra.Command) { kcmdutil.AddDryRunFlag(cmd) }

// DryRunStrategy reads --dry-run as kubectl does; a bad value is refused
// naming the three that work.
func DryRunStrategy(cmd *cobra.Command) (kcmdutil.DryRunStrategy, error) {
	return kcmdutil.GetDryRunStrategy(cmd)
}

// NewEnroller connects to the cluster the kubectl flags select, writing as
// strategy says; progress lines go to out (stderr), so that stdout stays
// the command's result.
func NewEnroller(f kcmdutil.Factory, strategy kcmdutil.DryRunStrategy, out io.Writer) (*enroll.Enroller, error) {
	client, err := ClientSet(f, strategy)
	if err != nil {
		return nil, err
	}
	e := enroll.New(client, out)
	e.DryRun = strategy
	return e, nil
}

// ClientSet is the client a command writes with. Under --dry-run=server
// every write it sends (POST, PUT, PATCH, DELETE) carries dryRun=All: the
// API server validates and admits it and persists nothing. Doing it on the
// wire, in one place, means no write of any workflow can escape the dry
// run, however the workflow grows. It does not contact the cluster.
func ClientSet(f kcmdutil.Factory, strategy kcmdutil.DryRunStrategy) (kubernetes.Interface, error) {
	if strategy != kcmdutil.DryRunServer {
		return f.KubernetesClientSet()
	}
	cfg, err := f.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(ServerDryRunConfig(cfg))
}

// ServerDryRunConfig returns a copy of cfg whose writes are server dry runs.
func ServerDryRunConfig(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	// JSON bodies, so that a DELETE's options can be marked (the clientset
	// would send protobuf).
	cfg.ContentType = runtime.ContentTypeJSON
	cfg.Wrap(func(next http.RoundTripper) http.RoundTripper { return serverDryRun{next: next} })
	return cfg
}

type serverDryRun struct{ next http.RoundTripper }

func (t serverDryRun) RoundTrip(req *http.Request) (*http.Response, error) {
	switch req.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		req = req.Clone(req.Context())
		query := req.URL.Query()
		query.Set("dryRun", metav1.DryRunAll)
		req.URL.RawQuery = query.Encode()
		if req.Method == http.MethodDelete && req.Body != nil && req.Body != http.NoBody {
			// The API server reads a DELETE's options from its body when it
			// has one, ignoring the query: the body must say dryRun too.
			if err := markDeleteOptions(req); err != nil {
				return nil, err
			}
		}
	}
	return t.next.RoundTrip(req)
}

// markDeleteOptions adds dryRun=All to the DeleteOptions a DELETE carries.
// A body it cannot read is refused rather than sent as a real delete.
func markDeleteOptions(req *http.Request) error {
	data, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return err
	}
	options := map[string]any{}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, &options); err != nil {
			return fmt.Errorf("server dry run: the options of DELETE %s are not JSON, so dryRun cannot be added to them: %w", req.URL.Path, err)
		}
	}
	options["dryRun"] = []string{metav1.DryRunAll}
	if data, err = json.Marshal(options); err != nil {
		return err
	}
	req.Body = io.NopCloser(bytes.NewReader(data))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	req.ContentLength = int64(len(data))
	return nil
}
