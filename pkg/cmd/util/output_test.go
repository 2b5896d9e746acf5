package util

import (
	"bytes"
	"testing"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kubectl-stage/kubectl-stage/pkg/api/v1alpha1"
)

func TestPrintFlags(t *testing.T) {
	sites := &v1alpha1.SiteList{Items: []v1alpha1.Site{
		{ObjectMeta: metav1.ObjectMeta{Name: "osaka"}, Status: v1alpha1.SiteStatus{Nodes: 2, Ready: 1}},
		{ObjectMeta: metav1.ObjectMeta{Name: "tokyo"}, Status: v1alpha1.SiteStatus{Nodes: 1, Ready: 1, Apps: map[string]int{"p2p/gossip": 1}}},
	}}
	configMap := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "kubectl-stage-config", Namespace: "kubectl-stage-system"}}
	tests := []struct {
		name     string
		args     []string
		withWide bool
		obj      runtime.Object
		want     string
		wantErr  string
		human    bool
	}{
		{name: "default is the command's view", human: true},
		{name: "wide where the table has one", args: []string{"-o", "wide"}, withWide: true, human: true},
		{name: "no wide without a wide table", args: []string{"-o", "wide"}, wantErr: `unable to match a printer suitable for the output format "wide"`},
		{name: "name of each item of a typed list", args: []string{"-o", "name"}, obj: sites, want: "site.kubectl-stage.io/osaka\nsite.kubectl-stage.io/tokyo\n"},
		{name: "name of a Kubernetes object", args: []string{"-o", "name"}, obj: configMap, want: "configmap/kubectl-stage-config\n"},
		{name: "jsonpath", args: []string{"-o", "jsonpath={.items[*].status.nodes}"}, obj: sites, want: "2 1"},
		{name: "jsonpath with the type set", args: []string{"-o", "jsonpath={.apiVersion} {.kind}"}, obj: sites, want: "kubectl-stage.io/v1alpha1 SiteList"},
		{name: "go-template", args: []string{"-o", "go-template={{range .items}}{{.metadata.name}}={{.status.ready}}/{{.status.nodes}};{{end}}"}, obj: sites, want: "osaka=1/2;tokyo=1/1;"},
		{name: "template flag", args: []string{"-o", "go-template", "--template", "{{.metadata.namespace}}"}, obj: configMap, want: "kubectl-stage-system"},
		{
			name: "yaml", args: []string{"-o", "yaml"}, obj: &v1alpha1.Site{ObjectMeta: metav1.ObjectMeta{Name: "tokyo"}, Status: v1alpha1.SiteStatus{Nodes: 1}},
			want: "apiVersion: kubectl-stage.io/v1alpha1\nkind: Site\nmetadata:\n  name: tokyo\nstatus:\n  nodes: 1\n  pods: 0\n  ready: 0\n",
		},
		{name: "unknown format", args: []string{"-o", "xml"}, wantErr: `unable to match a printer suitable for the output format "xml", allowed formats are: json,yaml,kyaml,name,go-template`},
		{name: "bad template", args: []string{"-o", "go-template={{.x"}, wantErr: "error parsing template {{.x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			flags := NewPrintFlags(tt.withWide)
			cmd := &cobra.Command{Use: "x", RunE: func(*cobra.Command, []string) error { return nil }}
			flags.AddFlags(cmd)
			if err := cmd.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			err := flags.Validate()
			if tt.wantErr != "" {
				if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.wantErr)) {
					t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if flags.HumanReadable() != tt.human {
				t.Fatalf("HumanReadable() = %t, want %t", flags.HumanReadable(), tt.human)
			}
			if tt.human {
				return
			}
			var out bytes.Buffer
			if err := flags.Print(tt.obj, &out); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("printed %q, want %q", out.String(), tt.want)
			}
		})
	}
}
