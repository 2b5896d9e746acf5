package agent

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// workLog records which agent works, and fails the test when two work at
// once.
type workLog struct {
	t       *testing.T
	mu      sync.Mutex
	working string
	events  []string
	changed chan struct{}
}

func newWorkLog(t *testing.T) *workLog { return &workLog{t: t, changed: make(chan struct{}, 100)} }

// work is an agent's work: it runs until its ctx ends.
func (w *workLog) work(who string) func(context.Context) error {
	return func(ctx context.Context) error {
		w.mu.Lock()
		if w.working != "" {
			w.t.Errorf("%s started working while %s works", who, w.working)
		}
		w.working = who
		w.events = append(w.events, who+" works")
		w.mu.Unlock()
		w.changed <- struct{}{}
		<-ctx.Done()
		w.mu.Lock()
		w.working = ""
		w.events = append(w.events, who+" stopped")
		w.mu.Unlock()
		w.changed <- struct{}{}
		return nil
	}
}

// waitWorking waits until who works ("" : nobody).
func (w *workLog) waitWorking(who string) {
	w.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		now, events := w.working, append([]string{}, w.events...)
		w.mu.Unlock()
		if now == who {
			return
		}
		select {
		case <-w.changed:
		case <-deadline:
			w.t.Fatalf("waiting for %q to work; %q works; events %q", who, now, events)
		}
	}
}

// runAgent runs an agent's handover until the returned stop is called.
func runAgent(t *testing.T, h *Handover, work func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.Run(ctx, work) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// TestHandover: the bundle's agent (Fallback) works alone; an agent pod
// (Preferred) takes over only after it stopped; it takes the work back
// when the pod stops, and when a pod's process is killed.
func TestHandover(t *testing.T) {
	dir := t.TempDir()
	w := newWorkLog(t)
	poll := 20 * time.Millisecond
	runAgent(t, &Handover{Dir: dir, Priority: Fallback, Poll: poll}, w.work("bundle"))
	w.waitWorking("bundle")

	stopPod := runAgent(t, &Handover{Dir: dir, Priority: Preferred, Poll: poll}, w.work("pod"))
	w.waitWorking("pod")
	stopPod()
	w.waitWorking("bundle")

	// A second pod waits for the first one (a DaemonSet's update); the
	// bundle's agent may work between them, never beside either.
	stopPod1 := runAgent(t, &Handover{Dir: dir, Priority: Preferred, Poll: poll}, w.work("pod-1"))
	w.waitWorking("pod-1")
	stopPod2 := runAgent(t, &Handover{Dir: dir, Priority: Preferred, Poll: poll}, w.work("pod-2"))
	time.Sleep(10 * poll)
	w.waitWorking("pod-1")
	stopPod1()
	w.waitWorking("pod-2")
	stopPod2()
	w.waitWorking("bundle")
	w.mu.Lock()
	want := []string{"bundle works", "bundle stopped", "pod works", "pod stopped", "bundle works", "bundle stopped", "pod-1 works", "pod-1 stopped"}
	if !slices.Equal(w.events[:len(want)], want) {
		t.Errorf("events %q, want them to begin with %q", w.events, want)
	}
	w.events = nil
	w.mu.Unlock()

	// A Preferred agent that dies holding its lock (here flock(1) killed
	// with SIGKILL) releases it with its process.
	killed := exec.Command("flock", "--exclusive", "--no-fork", filepath.Join(dir, preferredLockName), "sleep", "60")
	if err := killed.Start(); err != nil {
		t.Skipf("util-linux flock: %v", err)
	}
	w.waitWorking("")
	if err := killed.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = killed.Wait()
	w.waitWorking("bundle")

	w.mu.Lock()
	defer w.mu.Unlock()
	if want := []string{"bundle stopped", "bundle works"}; !slices.Equal(w.events, want) {
		t.Errorf("around the killed pod: events %q, want %q", w.events, want)
	}
}
