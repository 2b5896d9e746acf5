// Package secretfile writes files that hold credentials: mode 0600 from the
// first byte, and atomically, so no reader ever sees half a file and a failed
// write leaves nothing behind.
package secretfile

import (
	"fmt"
	"os"
	"path/filepath"
)

// Write replaces path with data, readable by its owner only.
func Write(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	if err := tmp.Chmod(0o600); err != nil {
		_ = tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
