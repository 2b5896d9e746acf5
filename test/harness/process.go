package harness

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"time"
)

// process is one control-plane daemon started by the harness.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	waitErr error
}

// startProcess runs path with args in its own process group, logging to
// logPath. The child is bound to this process's life with PDEATHSIG, so it
// dies with the test binary even when a test panics or times out and no
// cleanup runs: no daemon and no port outlives the tests.
func startProcess(name, path string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	// PDEATHSIG fires when the forking *thread* exits; a thread locked only
	// for the fork is kept alive by the Go runtime afterwards.
	runtime.LockOSThread()
	err = cmd.Start()
	runtime.UnlockOSThread()
	_ = logFile.Close()
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// stop asks the whole process group to terminate, and kills it if it has not
// within grace. It returns once the process has been reaped.
func (p *process) stop(grace time.Duration) error {
	if done, _ := p.exited(); done {
		return nil
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("terminating %s: %w", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	// Reap anything the daemon itself forked into the group.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return nil
}

// pid is the process id of the daemon.
func (p *process) pid() int { return p.cmd.Process.Pid }

// Daemon is a long-running program a test starts, bound to the test binary's
// life like the control plane's daemons.
type Daemon struct{ p *process }

// StartDaemon runs path with args, logging to logPath.
func StartDaemon(name, path string, args []string, logPath string) (*Daemon, error) {
	p, err := startProcess(name, path, args, logPath)
	if err != nil {
		return nil, err
	}
	return &Daemon{p: p}, nil
}

// Stop terminates the daemon and waits for it.
func (d *Daemon) Stop() { _ = d.p.stop(stopGrace) }

// WaitHealthy waits until url answers 200, failing early if the daemon exits.
func (d *Daemon) WaitHealthy(ctx context.Context, url string) error {
	return waitHealthy(ctx, d.p, http.DefaultClient, url)
}

// Kill ends the daemon's whole process group at once with SIGKILL, as a
// crash would: it gets no chance to clean anything up. It returns once the
// daemon has been reaped.
func (d *Daemon) Kill() {
	if done, _ := d.p.exited(); done {
		return
	}
	_ = syscall.Kill(-d.p.pid(), syscall.SIGKILL)
	<-d.p.done
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.p.pid() }

// Exited reports whether the daemon has ended.
func (d *Daemon) Exited() bool { done, _ := d.p.exited(); return done }
