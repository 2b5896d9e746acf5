package machine

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// hostDirsFile records, for every machine on this host, which mount points
// were missing on the host and had to be created. Machines of different
// test processes (go test runs packages in parallel) share the host's
// directories: each bind-mounts its private copy over, say, /var/lib/kubelet
// in its own mount namespace. Removing such a directory on the host while
// another machine lives detaches that machine's mount (Linux ≥ 3.18 does so
// for a mount point deleted in another namespace), and its kubelet loses
// /var/lib/kubelet mid-test. So the directories are created by whichever
// machine needs them first and removed by the last machine to go.
var hostDirsFile = filepath.Join(os.TempDir(), "kubectl-stage-machines.json")

// hostDirs is hostDirsFile's content.
type hostDirs struct {
	// Users are the live machines, as "PID:DIR" of the test process and
	// the machine's directory.
	Users []string `json:"users"`
	// Created are the directories created on the host, parents first.
	Created []string `json:"created"`
}

// userID names this machine among the users of the host's directories.
func (m *Machine) userID() string { return strconv.Itoa(os.Getpid()) + ":" + m.Dir }

// acquireHostDirs registers m as a user of the host's mount points and
// creates those missing on the host.
func (m *Machine) acquireHostDirs(dirs []string) error {
	return updateHostDirs(func(state *hostDirs) error {
		state.Users = append(state.Users, m.userID())
		for _, dir := range dirs {
			missing := ""
			for d := dir; d != "/"; d = filepath.Dir(d) {
				if _, err := os.Stat(d); errors.Is(err, os.ErrNotExist) {
					missing = d
				}
			}
			if missing == "" {
				continue
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			if !slices.Contains(state.Created, missing) {
				state.Created = append(state.Created, missing)
			}
		}
		return nil
	})
}

// releaseHostDirs unregisters m and, if no live machine is left, removes
// the directories machines created on the host.
func (m *Machine) releaseHostDirs() error {
	return updateHostDirs(func(state *hostDirs) error {
		state.Users = slices.DeleteFunc(state.Users, func(user string) bool {
			// Machines of test processes that died without destroying
			// them hold nothing any more.
			return user == m.userID() || !processAlive(user)
		})
		if len(state.Users) > 0 {
			return nil
		}
		var errs []error
		for i := len(state.Created) - 1; i >= 0; i-- {
			errs = append(errs, os.RemoveAll(state.Created[i]))
		}
		state.Created = nil
		return errors.Join(errs...)
	})
}

// updateHostDirs changes hostDirsFile under an exclusive lock on it.
func updateHostDirs(change func(*hostDirs) error) error {
	f, err := os.OpenFile(hostDirsFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", hostDirsFile, err)
	}
	var state hostDirs
	if info, err := f.Stat(); err != nil {
		return err
	} else if info.Size() > 0 {
		if err := json.NewDecoder(f).Decode(&state); err != nil {
			return fmt.Errorf("%s is damaged (%v): remove it once no machine runs", hostDirsFile, err)
		}
	}
	changeErr := change(&state)
	data, err := json.Marshal(state)
	if err != nil {
		return err
	}
	if err := f.Truncate(0); err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		return err
	}
	return changeErr
}

// processAlive says whether the test process of a "PID:DIR" user runs.
func processAlive(user string) bool {
	pidText, _, _ := strings.Cut(user, ":")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
