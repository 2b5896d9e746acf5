package cmd

import (
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewCmdStage(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String() + errOut.String(), err
}

func TestVersionOutputs(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, out string)
		wantErr string
	}{
		{
			name: "human",
			args: []string{"version"},
			check: func(t *testing.T, out string) {
				if !strings.HasPrefix(out, "kubectl-stage version: ") {
					t.Errorf("unexpected output %q", out)
				}
			},
		},
		{
			name: "json",
			args: []string{"version", "-o", "json"},
			check: func(t *testing.T, out string) {
				var v map[string]map[string]string
				if err := json.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("not JSON: %v: %s", err, out)
				}
				if v["clientVersion"]["gitVersion"] == "" || v["clientVersion"]["platform"] == "" {
					t.Errorf("clientVersion incomplete: %v", v)
				}
			},
		},
		{
			name: "yaml",
			args: []string{"version", "--output=yaml"},
			check: func(t *testing.T, out string) {
				var v map[string]map[string]string
				if err := yaml.Unmarshal([]byte(out), &v); err != nil {
					t.Fatalf("not YAML: %v: %s", err, out)
				}
				if v["clientVersion"]["goVersion"] == "" {
					t.Errorf("clientVersion incomplete: %v", v)
				}
			},
		},
		{
			name:    "unknown format",
			args:    []string{"version", "-o", "wide"},
			wantErr: `unable to match a printer suitable for the output format "wide", allowed formats are: json,yaml`,
		},
		{
			name:    "extra argument",
			args:    []string{"version", "now"},
			wantErr: `unknown command "now" for "kubectl stage version"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.args...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			tt.check(t, out)
		})
	}
}

func TestHelpReadsAsKubectlPlugin(t *testing.T) {
	out, err := run(t, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage:\n  kubectl stage [flags] [options]", "version", "completion", `Use "kubectl stage options"`} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
	opts, err := run(t, "options")
	if err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--kubeconfig", "--context", "--namespace", "--as", "-v, --v"} {
		if !strings.Contains(opts, flag) {
			t.Errorf("kubectl stage options lacks %s", flag)
		}
	}
}

func TestCompletion(t *testing.T) {
	tests := []struct {
		shell string
		want  string
	}{
		{"bash", "__start_kubectl-stage"},
		{"zsh", "#compdef kubectl-stage"},
		{"fish", "complete -c kubectl-stage"},
		{"powershell", "Register-ArgumentCompleter"},
		{"kubectl", `exec kubectl-stage __complete "$@"`},
	}
	for _, tt := range tests {
		t.Run(tt.shell, func(t *testing.T) {
			out, err := run(t, "completion", tt.shell)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("completion %s lacks %q", tt.shell, tt.want)
			}
		})
	}
	if _, err := run(t, "completion", "tcsh"); err == nil || !strings.Contains(err.Error(), "must be one of") {
		t.Errorf("unsupported shell error = %v", err)
	}
	out, err := run(t, "__complete", "version", "-o", "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "json") || !strings.Contains(out, "yaml") {
		t.Errorf("-o does not complete its formats: %q", out)
	}
}
