package machine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const cgroupMount = "/sys/fs/cgroup"

// hierarchies are the mounted cgroup v1 hierarchies (cpu, memory, ...,
// systemd for name=systemd), or the unified one alone on a cgroup v2 host.
func hierarchies() ([]string, error) {
	entries, err := os.ReadDir(cgroupMount)
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "unified" {
			dirs = append(dirs, filepath.Join(cgroupMount, e.Name()))
		}
	}
	if _, err := os.Stat(filepath.Join(cgroupMount, "cgroup.controllers")); err == nil {
		dirs = []string{cgroupMount} // cgroup v2 only
	}
	return dirs, nil
}

// createCgroup makes root in every hierarchy, as the kubelet requires of its
// cgroupRoot; cpuset needs cpus and mems before a process may join.
func createCgroup(root string) error {
	dirs, err := hierarchies()
	if err != nil {
		return err
	}
	for _, h := range dirs {
		dir := filepath.Join(h, root)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating cgroup %s: %w", dir, err)
		}
		if filepath.Base(h) != "cpuset" {
			continue
		}
		for _, file := range []string{"cpuset.cpus", "cpuset.mems"} {
			value, err := os.ReadFile(filepath.Join(h, file))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, file), value, 0o644); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(dir, file), err)
			}
		}
	}
	return nil
}

// removeCgroup removes root and everything under it in every hierarchy,
// cgroup v2's unified one included (runc creates the containers' cgroups
// there too), deepest first; the processes in them must be gone.
func removeCgroup(root string) error {
	dirs, err := hierarchies()
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(cgroupMount, "unified")); err == nil {
		dirs = append(dirs, filepath.Join(cgroupMount, "unified"))
	}
	var errs []error
	for _, h := range dirs {
		top := filepath.Join(h, root)
		var tree []string
		_ = filepath.WalkDir(top, func(path string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				tree = append(tree, path)
			}
			return nil
		})
		sort.Slice(tree, func(i, j int) bool { return strings.Count(tree[i], "/") > strings.Count(tree[j], "/") })
		for _, dir := range tree {
			if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
			}
		}
	}
	return errors.Join(errs...)
}

// globalSysctls are the host-wide settings a kubelet changes
// (protectKernelDefaults false: it sets what it wants).
var globalSysctls = []string{"kernel/panic", "kernel/panic_on_oops", "vm/overcommit_memory"}

// SaveSysctls records the host-wide sysctls kubelets change; restore puts
// them back.
func SaveSysctls() (restore func() error, err error) {
	saved := map[string][]byte{}
	for _, key := range globalSysctls {
		value, err := os.ReadFile(filepath.Join("/proc/sys", key))
		if err != nil {
			return nil, err
		}
		saved[key] = value
	}
	return func() error {
		var errs []error
		for key, value := range saved {
			if err := os.WriteFile(filepath.Join("/proc/sys", key), value, 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restoring %s: %w", key, err))
			}
		}
		return errors.Join(errs...)
	}, nil
}
