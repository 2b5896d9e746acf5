package harness

import (
	"context"
	"testing"
)

// StartForTest starts a control plane for t and stops it when t ends,
// printing the daemons' logs if t failed.
func StartForTest(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	cp, err := Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("starting the control plane: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:%s", cp.logTails())
		}
		cp.Stop()
	})
	return cp
}
