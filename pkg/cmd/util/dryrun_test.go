package util

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
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
	var seen map[string]string // method -> dryRun query value
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen[r.Method] = r.URL.Query().Get("dryRun")
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{}`)
	}))
	defer server.Close()
	client, err := rest.HTTPClientFor(ServerDryRunConfig(&rest.Config{Host: server.URL}))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		http.MethodGet: "", http.MethodPost: metav1.DryRunAll, http.MethodPut: metav1.DryRunAll,
		http.MethodPatch: metav1.DryRunAll, http.MethodDelete: metav1.DryRunAll,
	}
	seen = map[string]string{}
	for method := range want {
		req, _ := http.NewRequest(method, server.URL+"/api/v1/namespaces/x/configmaps/y?fieldManager=m", nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	for method, value := range want {
		if seen[method] != value {
			t.Errorf("%s went out with dryRun=%q, want %q", method, seen[method], value)
		}
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
