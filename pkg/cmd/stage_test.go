package cmd

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
	"github.com/kubectl-stage/kubectl-stage/pkg/version"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	streams, _, out, errOut := genericiooptions.NewTestIOStreams()
	root := NewCmdStage(streams)
	root.SetArgs(args)
	err := root.Execute()
	return out.String() + errOut.String(), err
}

// TestVersionOutputs: every printer cli-runtime offers, with the exact
// result for the running binary's build information.
func TestVersionOutputs(t *testing.T) {
	info := version.Get()
	decodes := func(unmarshal func([]byte, any) error) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			var got v1alpha1.PluginVersion
			if err := unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			want := v1alpha1.PluginVersion{TypeMeta: metav1.TypeMeta{APIVersion: "kubectl-stage.io/v1alpha1", Kind: "PluginVersion"}, ClientVersion: info}
			if got != want {
				t.Errorf("got %+v, want %+v", got, want)
			}
		}
	}
	exactly := func(want string) func(t *testing.T, out string) {
		return func(t *testing.T, out string) {
			if out != want {
				t.Errorf("output %q, want %q", out, want)
			}
		}
	}
	tests := []struct {
		name    string
		args    []string
		check   func(t *testing.T, out string)
		wantErr string
	}{
		{name: "human", args: []string{"version"}, check: exactly(fmt.Sprintf("kubectl-stage version: %s (commit unknown, built unknown, %s %s)\n", info.GitVersion, info.GoVersion, info.Platform))},
		{name: "json", args: []string{"version", "-o", "json"}, check: decodes(json.Unmarshal)},
		{name: "yaml", args: []string{"version", "--output=yaml"}, check: decodes(func(b []byte, v any) error { return yaml.UnmarshalStrict(b, v) })},
		{name: "jsonpath", args: []string{"version", "-o", "jsonpath={.clientVersion.gitVersion}"}, check: exactly(info.GitVersion)},
		{name: "go-template", args: []string{"version", "-o", "go-template={{.kind}} {{.clientVersion.platform}}"}, check: exactly("PluginVersion " + info.Platform)},
		{name: "template flag", args: []string{"version", "-o", "go-template", "--template", "{{.apiVersion}}"}, check: exactly("kubectl-stage.io/v1alpha1")},
		{
			name:    "name does not apply",
			args:    []string{"version", "-o", "name"},
			wantErr: `unable to match a printer suitable for the output format "name", allowed formats are: json,yaml,kyaml,go-template,go-template-file,template,templatefile,jsonpath,jsonpath-as-json,jsonpath-file`,
		},
		{
			name:    "no table to widen",
			args:    []string{"version", "-o", "wide"},
			wantErr: `unable to match a printer suitable for the output format "wide"`,
		},
		{name: "bad template", args: []string{"version", "-o", "jsonpath={.clientVersion"}, wantErr: "error parsing jsonpath {.clientVersion"},
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
