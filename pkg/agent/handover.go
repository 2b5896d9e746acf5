package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Priority says which of a machine's agents applies its network conditions
// when more than one runs there: the join bundle's process, and the agent
// pod of the Helm chart's DaemonSet (netAgent.enabled).
type Priority string

const (
	// Fallback applies the conditions while no Preferred agent runs on the
	// machine, and hands them over while one does (the bundle's process).
	Fallback Priority = "fallback"
	// Preferred applies the conditions whenever it runs (the chart's pod).
	Preferred Priority = "preferred"
)

// Handover lets one agent per machine apply the network conditions, using
// two file locks in Dir (a directory every agent on the machine sees: the
// pod mounts it from the host). The kernel releases a lock when its holder
// dies, so a crashed agent never blocks the other:
//
//   - preferred.lock is held by the running Preferred agent;
//   - active.lock is held by the agent whose rules are in place.
//
// A Preferred agent takes preferred.lock, then waits for active.lock; a
// Fallback agent works only while preferred.lock is free, and stops,
// removing its rules and releasing active.lock, once it is taken. Two agents
// therefore never apply rules, nor answer probes, at the same time.
type Handover struct {
	Dir      string
	Priority Priority
	// Poll is how often a waiting agent tries the locks, and how often a
	// working Fallback agent looks for a Preferred one.
	Poll time.Duration
	Log  io.Writer
}

// Lock file names in Dir.
const (
	preferredLockName = "net-conditions.preferred.lock"
	activeLockName    = "net-conditions.active.lock"
)

// Run runs work while this agent is the one that applies the conditions,
// until ctx ends or work fails.
func (h *Handover) Run(ctx context.Context, work func(context.Context) error) error {
	if err := os.MkdirAll(h.Dir, 0o700); err != nil {
		return fmt.Errorf("the network conditions' lock directory: %w", err)
	}
	preferred, err := openLock(filepath.Join(h.Dir, preferredLockName))
	if err != nil {
		return err
	}
	defer func() { _ = preferred.Close() }()
	active, err := openLock(filepath.Join(h.Dir, activeLockName))
	if err != nil {
		return err
	}
	defer func() { _ = active.Close() }()
	if h.Priority == Preferred {
		if !h.wait(ctx, preferred, "another agent pod on this machine to stop") ||
			!h.wait(ctx, active, "the join bundle's agent to hand the network conditions over") {
			return nil
		}
		return work(ctx)
	}
	for {
		if !h.waitFree(ctx, preferred) || !h.wait(ctx, active, "another agent on this machine to stop applying the network conditions") {
			return nil
		}
		handedOver, err := h.workUntilPreferred(ctx, preferred, work)
		if unlockErr := unix.Flock(int(active.Fd()), unix.LOCK_UN); unlockErr != nil && err == nil {
			err = fmt.Errorf("releasing %s: %w", active.Name(), unlockErr)
		}
		if err != nil || !handedOver {
			return err
		}
		logTo(h.Log, "network conditions handed over to the agent pod on this machine (it holds %s); taking them back when it stops", preferred.Name())
	}
}

// workUntilPreferred runs work until ctx ends, work fails, or a Preferred
// agent takes preferred; it says whether the last happened.
func (h *Handover) workUntilPreferred(ctx context.Context, preferred *os.File, work func(context.Context) error) (handedOver bool, err error) {
	workCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- work(workCtx) }()
	ticker := time.NewTicker(h.Poll)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			return false, err
		case <-ticker.C:
			held, err := heldByAnother(preferred)
			if err != nil {
				stop()
				return false, errors.Join(err, <-done)
			}
			if held {
				stop()
				return true, <-done
			}
		}
	}
}

// wait takes f's lock, trying every Poll until ctx ends (false then).
func (h *Handover) wait(ctx context.Context, f *os.File, what string) bool {
	said := false
	return h.retry(ctx, func() bool {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true
		case !errors.Is(err, unix.EWOULDBLOCK):
			logTo(h.Log, "locking %s: %v", f.Name(), err)
		case !said:
			logTo(h.Log, "waiting for %s (%s is locked)", what, f.Name())
			said = true
		}
		return false
	})
}

// waitFree waits until nobody holds f's lock, without keeping it.
func (h *Handover) waitFree(ctx context.Context, f *os.File) bool {
	return h.retry(ctx, func() bool {
		held, err := heldByAnother(f)
		if err != nil {
			logTo(h.Log, "%v", err)
		}
		return err == nil && !held
	})
}

// retry calls attempt every Poll until it succeeds (true) or ctx ends.
func (h *Handover) retry(ctx context.Context, attempt func() bool) bool {
	for !attempt() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(h.Poll):
		}
	}
	return true
}

// heldByAnother says whether another open file holds f's lock: it takes
// the lock for an instant when it is free.
func heldByAnother(f *os.File) (bool, error) {
	switch err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); {
	case errors.Is(err, unix.EWOULDBLOCK):
		return true, nil
	case err != nil:
		return false, fmt.Errorf("trying %s: %w", f.Name(), err)
	}
	return false, unix.Flock(int(f.Fd()), unix.LOCK_UN)
}

// openLock opens (creating) a lock file, readable by root only.
func openLock(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("the network conditions' lock: %w", err)
	}
	return f, nil
}
