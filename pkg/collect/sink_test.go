package collect

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A record appears whole at its path on Commit, with its files 0600 and
// directories 0700, and nothing at all on Abort.
func TestSinks(t *testing.T) {
	for _, name := range []string{"record", "record.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, name)
			aborted, err := NewSink(path, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if err := aborted.Add("app/logs/p/c.log", []byte("x")); err != nil {
				t.Fatal(err)
			}
			aborted.Abort()
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("abort left %v", entries)
			}

			sink, err := NewSink(path, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			if err := sink.Add("app/logs/p/c.log", []byte("line\n")); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Fatalf("%s is visible before the commit", path)
			}
			if err := sink.Commit(); err != nil {
				t.Fatal(err)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || entries[0].Name() != name {
				t.Fatalf("after commit the directory holds %v", entries)
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			want := os.FileMode(0o600)
			if info.IsDir() {
				want = os.ModeDir | 0o700
				f, err := os.Stat(filepath.Join(path, "app", "logs", "p", "c.log"))
				if err != nil || f.Mode() != 0o600 {
					t.Errorf("the log file: %v %v", f, err)
				}
			}
			if info.Mode() != want {
				t.Errorf("%s has mode %v, want %v", path, info.Mode(), want)
			}
			if _, err := NewSink(path, time.Unix(0, 0)); err == nil || err.Error() != path+" already exists: give a new directory or FILE.tar.gz with -o" {
				t.Errorf("a second record at the same path: %v", err)
			}
		})
	}
}
