package agent

import (
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-stage/kubectl-stage/pkg/agent"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*Options)
		wantErr string
	}{
		{"node", func(o *Options) { o.Node = "tokyo-1" }, ""},
		{"hub", func(o *Options) { o.Hub, o.Node = true, "" }, ""},
		{"hub observing too often", func(o *Options) { o.Hub, o.Node, o.Observe = true, "", 100*time.Millisecond }, "--observe 100ms: at least 500ms"},
		{"hub without its mesh", func(o *Options) { o.Hub, o.Node, o.Mesh = true, "", false }, "--mesh=false leaves nothing to do"},
		{"no node", func(o *Options) { o.Node = "" }, "--node NAME"},
		{"bad node", func(o *Options) { o.Node = "Tokyo_1" }, `--node: invalid node name "Tokyo_1"`},
		{"interface with a space", func(o *Options) { o.Interface = "stage 0" }, `--interface: interface name "stage 0": only letters`},
		{"interface too long", func(o *Options) { o.Interface = "a-very-long-interface" }, "want 1-15 characters"},
		{"mesh only", func(o *Options) { o.NetConditions = false }, ""},
		{"conditions only, preferred (the chart's pod)", func(o *Options) { o.Mesh, o.Priority = false, agent.Preferred }, ""},
		{"nothing to do", func(o *Options) { o.Mesh, o.NetConditions = false, false }, "--mesh=false leaves nothing to do: on a node keep --net-conditions"},
		{"unknown priority", func(o *Options) { o.Priority = "high" }, `--net-conditions-priority "high": use fallback (the join bundle's agent) or preferred (the chart's agent pod)`},
		{"relative lock directory", func(o *Options) { o.LockDir = "run" }, `--lock-dir "run": give an absolute path`},
		{"probes too fast", func(o *Options) { o.ProbeInterval = time.Millisecond }, "--probe-interval 1ms, --probe-peers 10: at least 100ms"},
		{"too many peers per round", func(o *Options) { o.ProbePeers = 1000 }, "between 1 and 100 peers"},
		{"publishing too often", func(o *Options) { o.PublishEvery = time.Millisecond }, "--publish-every 1ms: at least 1s"},
		{"metrics address without port", func(o *Options) { o.MetricsAddr = "127.0.0.1" }, `--metrics-addr "127.0.0.1" is not HOST:PORT`},
		{"resync too short", func(o *Options) { o.Resync = time.Millisecond }, "--resync 1ms: at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions(genericiooptions.NewTestIOStreamsDiscard())
			o.Node = "tokyo-1"
			tt.set(o)
			err := o.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestHubAndNodeExcludeEachOther(t *testing.T) {
	cmd := NewCmdAgent(genericiooptions.NewTestIOStreamsDiscard())
	cmd.SetArgs([]string{"--hub", "--node", "tokyo-1", "--kubeconfig", "/nonexistent"})
	if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), "--hub and --node exclude each other") {
		t.Errorf("error %v", err)
	}
}
