package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/consensus/lease"
	"github.com/clusterd/clusterd/resource"
	"github.com/vishvananda/netlink"
)

// The fencing companion is a second, tiny process (`clusterd fence`) that removes
// this node's cluster addresses the moment the agent dies (its stdin pipe closes) or
// when the agent's lease deadline passes without a newer one (the agent stalled).
// The agent writes one line per deadline change: "D <CLOCK_BOOTTIME ns>" (0: it
// holds nothing).

// RunFence is the companion's main loop.
func RunFence(ctx context.Context, dataDir string, in io.Reader, log *slog.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("fence: open netlink: %w (needs CAP_NET_ADMIN)", err)
	}
	defer h.Close()
	raisePriority()
	lines := make(chan time.Duration)
	eof := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 2 || f[0] != "D" {
				continue
			}
			ns, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				continue
			}
			select {
			case lines <- time.Duration(ns):
			case <-ctx.Done():
				return
			}
		}
		eof <- sc.Err()
	}()
	remove := func(why string) {
		start := time.Now()
		n, err := resource.RemoveRecorded(h, dataDir)
		if n > 0 || err != nil {
			log.Warn("fence: removed this node's cluster addresses", "why", why, "count", n, "took", time.Since(start).String(), "err", err)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			remove("fence stopped by a signal")
			return nil
		case err := <-eof:
			remove("the agent exited (its pipe closed)")
			return err
		case d := <-lines:
			timer.Stop()
			if d > 0 {
				timer.Reset(max(d-lease.Boottime(), 0))
			}
		case <-timer.C:
			remove("the agent's lease deadline passed without renewal (agent stalled)")
		}
	}
}

// fencer starts the companion and feeds it deadlines.
type fencer struct {
	log *slog.Logger
	cmd *exec.Cmd
	w   io.WriteCloser

	mu   sync.Mutex // guards last and the writes
	last time.Duration
}

// startFence starts `clusterd fence --data-dir DIR` as its own process group (a
// Ctrl-C or a group kill of the agent must not take it along).
func startFence(dataDir string, log *slog.Logger) (*fencer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary for the fencing companion: %w", err)
	}
	cmd := exec.Command(exe, "fence", "--data-dir", dataDir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	w, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the fencing companion: %w", err)
	}
	log.Info("fencing companion started", "pid", cmd.Process.Pid)
	return &fencer{log: log, cmd: cmd, w: w}, nil
}

// set sends a new deadline when it moved by more than a millisecond.
func (f *fencer) set(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d-f.last < time.Millisecond && f.last-d < time.Millisecond {
		return
	}
	f.last = d
	if _, err := fmt.Fprintf(f.w, "D %d\n", int64(d)); err != nil {
		f.log.Error("fencing companion unreachable", "err", err)
	}
}

// stop closes the pipe (the companion removes what is left and exits) and waits.
func (f *fencer) stop() {
	f.w.Close()
	done := make(chan error, 1)
	go func() { done <- f.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		f.cmd.Process.Kill()
		<-done
	}
}

// Release removes the addresses recorded in dataDir (`clusterd release`).
func Release(dataDir string) (int, error) {
	h, err := netlink.NewHandle()
	if err != nil {
		return 0, fmt.Errorf("open netlink: %w (run as root)", err)
	}
	defer h.Close()
	return resource.RemoveRecorded(h, dataDir)
}
