package rollout

import (
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// --detach hands the waves to the in-cluster controller, which cannot run
// a command meant for this machine: the two together are refused before
// anything is read or written.
func TestValidateDetach(t *testing.T) {
	tests := []struct {
		name       string
		healthExec string
		healthHTTP string
		wantErr    string
	}{
		{name: "detach alone"},
		{name: "detach with an HTTP health check", healthHTTP: "http://monitor.example/healthy?site={site}"},
		{name: "detach with a command", healthExec: "check-peers", wantErr: "--health-exec runs on the machine that drives the rollout, and with --detach the in-cluster controller drives it: use --health-http, or leave out --detach"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := NewOptions(genericiooptions.NewTestIOStreamsDiscard())
			o.Images, o.Detach, o.HealthExec, o.HealthHTTP = []string{"p2p:v2"}, true, tt.healthExec, tt.healthHTTP
			err := o.Validate()
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
