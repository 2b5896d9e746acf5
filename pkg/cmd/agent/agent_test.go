package agent

import (
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name    string
		o       Options
		wantErr string
	}{
		{"node", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Second}, ""},
		{"hub", Options{Hub: true, Interface: "stage0", Resync: time.Second, Observe: 2 * time.Second}, ""},
		{"hub observing too often", Options{Hub: true, Interface: "stage0", Resync: time.Second, Observe: 100 * time.Millisecond}, "--observe 100ms: at least 500ms"},
		{"no node", Options{Interface: "stage0", Resync: time.Second}, "--node NAME"},
		{"bad node", Options{Node: "Tokyo_1", Interface: "stage0", Resync: time.Second}, `--node: invalid node name "Tokyo_1"`},
		{"interface with a space", Options{Node: "tokyo-1", Interface: "stage 0", Resync: time.Second}, `--interface: interface name "stage 0": only letters`},
		{"interface too long", Options{Node: "tokyo-1", Interface: "a-very-long-interface", Resync: time.Second}, "want 1-15 characters"},
		{"net conditions", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Second, NetConditions: true, ProbeInterval: time.Second, ProbePeers: 10, PublishEvery: 5 * time.Second}, ""},
		{"probes too fast", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Second, NetConditions: true, ProbeInterval: time.Millisecond, ProbePeers: 10, PublishEvery: 5 * time.Second}, "--probe-interval 1ms, --probe-peers 10: at least 100ms"},
		{"too many peers per round", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Second, NetConditions: true, ProbeInterval: time.Second, ProbePeers: 1000, PublishEvery: 5 * time.Second}, "between 1 and 100 peers"},
		{"publishing too often", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Second, NetConditions: true, ProbeInterval: time.Second, ProbePeers: 10, PublishEvery: time.Millisecond}, "--publish-every 1ms: at least 1s"},
		{"metrics address without port", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Second, NetConditions: true, ProbeInterval: time.Second, ProbePeers: 10, PublishEvery: 5 * time.Second, MetricsAddr: "127.0.0.1"}, `--metrics-addr "127.0.0.1" is not HOST:PORT`},
		{"resync too short", Options{Node: "tokyo-1", Interface: "stage0", Resync: time.Millisecond}, "--resync 1ms: at least 1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
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
