package util

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	kcmdutil "k8s.io/kubectl/pkg/cmd/util"

	"github.com/kubectl-stage/kubectl-stage/pkg/enroll"
	"github.com/kubectl-stage/kubectl-stage/pkg/input"
	"github.com/kubectl-stage/kubectl-stage/pkg/rollout"
)

func TestDryRunStrategy(t *testing.T) {
	tests := []struct {
		args    []string
		want    kcmdutil.DryRunStrategy
		wantErr string
	}{
		{args: nil, want: kcmdutil.DryRunNone},
		{args: []string{"--dry-run=none"}, want: kcmdutil.DryRunNone},
		{args: []string{"--dry-run=client"}, want: kcmdutil.DryRunClient},
		{args: []string{"--dry-run=server"}, want: kcmdutil.DryRunServer},
		// join's --dry-run was a bool before there were three modes: the
		// bare flag and its bool values keep their meaning.
		{args: []string{"--dry-run"}, want: kcmdutil.DryRunClient},
		{args: []string{"--dry-run=true"}, want: kcmdutil.DryRunClient},
		{args: []string{"--dry-run=false"}, want: kcmdutil.DryRunNone},
		{args: []string{"--dry-run=all"}, wantErr: `Invalid dry-run value (all). Must be "none", "server", or "client".`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.args), func(t *testing.T) {
			cmd := &cobra.Command{Use: "x"}
			AddDryRunFlag(cmd)
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := DryRunStrategy(cmd)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("DryRunStrategy() = %v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("DryRunStrategy() = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestServerDryRunConfigMarksEveryWrite(t *testing.T) {
	type request struct{ query, body string }
	seen := map[string]request{} // method -> what the server got
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		seen[r.Method] = request{query: r.URL.Query().Get("dryRun"), body: string(body)}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer server.Close()
	client, err := rest.HTTPClientFor(ServerDryRunConfig(&rest.Config{Host: server.URL}))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, body string
		want         request
	}{
		{method: http.MethodGet, want: request{}},
		{method: http.MethodPost, body: `{"kind":"ConfigMap"}`, want: request{query: metav1.DryRunAll, body: `{"kind":"ConfigMap"}`}},
		{method: http.MethodPut, want: request{query: metav1.DryRunAll}},
		{method: http.MethodPatch, want: request{query: metav1.DryRunAll}},
		// A DELETE's body options win over its query on the API server.
		{method: http.MethodDelete, body: `{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"u"}}`,
			want: request{query: metav1.DryRunAll, body: `{"apiVersion":"v1","dryRun":["All"],"kind":"DeleteOptions","preconditions":{"uid":"u"}}`}},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, server.URL+"/api/v1/namespaces/x/configmaps/y", strings.NewReader(tt.body))
		if tt.body == "" {
			req.Body = http.NoBody
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tt.method, err)
		}
		_ = resp.Body.Close()
		if seen[tt.method] != tt.want {
			t.Errorf("%s went out as %+v, want %+v", tt.method, seen[tt.method], tt.want)
		}
	}
	req, _ := http.NewRequest(http.MethodDelete, server.URL+"/api/v1/nodes/n", strings.NewReader("\x0akubernetes-protobuf"))
	if _, err := client.Do(req); err == nil || !strings.Contains(err.Error(), "dryRun cannot be added") {
		t.Errorf("a DELETE whose options cannot be marked was sent (err %v)", err)
	}
}

func TestWithFlagHints(t *testing.T) {
	plain := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "no error", err: nil, want: "<nil>"},
		{name: "no suggestion", err: plain, want: "boom"},
		{name: "one flag", err: input.Fix(errors.New(`"half" is not a wave`), input.Use(rollout.InputWaves)), want: `"half" is not a wave (--waves)`},
		{name: "flag with value", err: input.Fix(errors.New("keep the overlay CIDR 10.23.0.0/16"), input.Set(enroll.InputOverlayCIDR, "10.23.0.0/16")),
			want: "keep the overlay CIDR 10.23.0.0/16 (--overlay-cidr=10.23.0.0/16)"},
		{name: "two flags", err: input.Fix(errors.New("positive"), input.Use(enroll.InputTokenTTL), input.Use(enroll.InputCredentialValidity)),
			want: "positive (--token-ttl, --credential-validity)"},
		{name: "wrapped", err: fmt.Errorf("planning: %w", input.Fix(errors.New("pick another node name"), input.Use(enroll.InputNode))),
			want: "planning: pick another node name (--node)"},
		{name: "input without a flag", err: input.Fix(plain, input.Use("colour")), want: "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := WithFlagHints(tt.err)
			if fmt.Sprint(got) != tt.want {
				t.Errorf("WithFlagHints() = %q, want %q", fmt.Sprint(got), tt.want)
			}
			if tt.err != nil && !errors.Is(got, tt.err) {
				t.Error("the hinted error no longer wraps the original")
			}
			if again := WithFlagHints(got); fmt.Sprint(again) != tt.want {
				t.Errorf("hinted twice: %q", fmt.Sprint(again))
			}
		})
	}
}
