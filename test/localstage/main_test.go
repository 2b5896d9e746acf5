package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestLocalStage runs README's main job end to end, briefly: control plane,
// init, a join per node, the simulated kubelets, sites and status.
func TestLocalStage(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"tokyo", "osaka"}, 1, dir, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bundles/tokyo-1.join.sh", "bundles/osaka-1.join.sh", "hub/server.conf", "hub/ccd/tokyo-1", "hub/ccd/osaka-1"} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Errorf("%s was not written: %v", f, err)
			continue
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", f, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "kubeconfig")); !os.IsNotExist(err) {
		t.Error("the kubeconfig of a stopped cluster was left behind")
	}
}
