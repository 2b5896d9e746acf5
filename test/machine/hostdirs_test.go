package machine

import (
	"os"
	"path/filepath"
	"testing"
)

// TestHostDirsLastUserRemoves: the mount points machines create on the host
// stay while any machine uses them, even one started by another test
// process, and go with the last; machines whose process died hold nothing.
func TestHostDirsLastUserRemoves(t *testing.T) {
	tmp := t.TempDir()
	saved := hostDirsFile
	hostDirsFile = filepath.Join(tmp, "machines.json")
	t.Cleanup(func() { hostDirsFile = saved })
	dirs := []string{filepath.Join(tmp, "etc", "kubernetes"), filepath.Join(tmp, "var", "lib", "kubelet")}
	created := []string{filepath.Join(tmp, "etc"), filepath.Join(tmp, "var")}

	first, second := &Machine{Config: Config{Dir: filepath.Join(tmp, "m-1")}}, &Machine{Config: Config{Dir: filepath.Join(tmp, "m-2")}}
	for _, m := range []*Machine{first, second} {
		if err := m.acquireHostDirs(dirs); err != nil {
			t.Fatal(err)
		}
	}
	// A machine of a test process that died (no process has PID 0x7ffffffe).
	if err := updateHostDirs(func(s *hostDirs) error {
		s.Users = append(s.Users, "2147483646:"+filepath.Join(tmp, "dead"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	if err := first.releaseHostDirs(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if !dirExists(d) {
			t.Fatalf("%s was removed while %s still uses it", d, second.Dir)
		}
	}
	if err := second.releaseHostDirs(); err != nil {
		t.Fatal(err)
	}
	for _, d := range created {
		if dirExists(d) {
			t.Errorf("%s is left after the last machine went", d)
		}
	}
	var state hostDirs
	if err := updateHostDirs(func(s *hostDirs) error { state = *s; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(state.Users) != 0 || len(state.Created) != 0 {
		t.Errorf("the registry still holds %+v", state)
	}
}

// TestHostDirsKeepsWhatExisted: directories the host had are never removed.
func TestHostDirsKeepsWhatExisted(t *testing.T) {
	tmp := t.TempDir()
	saved := hostDirsFile
	hostDirsFile = filepath.Join(tmp, "machines.json")
	t.Cleanup(func() { hostDirsFile = saved })
	existing := filepath.Join(tmp, "etc")
	if err := os.Mkdir(existing, 0o755); err != nil {
		t.Fatal(err)
	}
	m := &Machine{Config: Config{Dir: filepath.Join(tmp, "m-1")}}
	if err := m.acquireHostDirs([]string{filepath.Join(existing, "kubernetes")}); err != nil {
		t.Fatal(err)
	}
	if err := m.releaseHostDirs(); err != nil {
		t.Fatal(err)
	}
	if !dirExists(existing) || dirExists(filepath.Join(existing, "kubernetes")) {
		t.Errorf("want %s kept and its kubernetes removed", existing)
	}
}
