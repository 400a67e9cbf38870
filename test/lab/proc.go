package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Proc is a long-running process started with Host.Start. The lab stops it at Close.
type Proc struct {
	host *Host
	name string
	pid  int
	log  string
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // the exit status; set before done is closed
}

// Start starts name in the namespace (via Command) as the leader of a new process
// group, with stdout and stderr appended to a log file in the lab's log directory.
// The lab tracks it: Close sends SIGTERM, then SIGKILL after Options.Grace. It also
// gets SIGKILL (Pdeathsig) when the test process dies: it is forked from a thread the
// lab keeps locked for its lifetime (see spawner).
func (h *Host) Start(name string, args ...string) (*Proc, error) {
	l := h.lab
	dir, err := l.logDir()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.nproc++
	n := l.nproc
	l.mu.Unlock()
	path := filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", h.port, filepath.Base(name), n))
	if h == l.sw {
		path = filepath.Join(dir, fmt.Sprintf("%s-%s-%d.log", roleSwitch, filepath.Base(name), n))
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create log for %s: %w", name, err)
	}
	defer f.Close()
	cmd := exec.Command("ip", h.execArgs(name, args)...) // no context: the lab owns its lifetime
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, fmt.Errorf("start %s in %s: lab %s is closed", name, h.Name, l.id)
	}
	if l.spawner == nil {
		l.spawner = newSpawner()
	}
	sp := l.spawner
	l.mu.Unlock()
	if err := sp.start(cmd); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, h.Name, err)
	}
	p := &Proc{host: h, name: name, pid: cmd.Process.Pid, log: path, done: make(chan struct{})}
	go func() { // ends when the process exits; Close makes sure it does
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	closed := l.closed
	if !closed {
		l.procs = append(l.procs, p)
	}
	l.mu.Unlock()
	if closed { // Close ran meanwhile and did not see p
		p.Kill()
		return nil, fmt.Errorf("start %s in %s: lab %s is closed", name, h.Name, l.id)
	}
	return p, nil
}

// String names the process and where it runs: "sleep[1234] in cdlab-4242-9f3a-n1".
func (p *Proc) String() string { return p.name + "[" + strconv.Itoa(p.pid) + "] in " + p.host.Name }

// Pid returns the process id (also its process group id).
func (p *Proc) Pid() int { return p.pid }

// LogPath returns the file that receives the process's stdout and stderr.
func (p *Proc) LogPath() string { return p.log }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Wait waits for the process to exit and returns its status as exec.Cmd.Wait does.
// It may be called any number of times, from any goroutine.
func (p *Proc) Wait() error {
	<-p.done
	return p.err
}

// Signal sends sig to the process (not its group): SIGSTOP freezes a daemon for a
// stall test, SIGCONT thaws it. Signalling an exited process is not an error.
func (p *Proc) Signal(sig syscall.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := unix.Kill(p.pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("send %v to %v: %w", sig, p, err)
	}
	return nil
}

// Kill sends SIGKILL to the process group (kill -9, a crash) and waits until the
// process has exited. Killing an exited process is not an error.
func (p *Proc) Kill() error {
	if err := p.signalGroup(unix.SIGKILL); err != nil {
		return err
	}
	<-p.done
	return nil
}

// Stop sends SIGTERM to the process group, waits up to grace for the process to exit,
// then sends SIGKILL, and returns the exit status (an *exec.ExitError for a signal).
func (p *Proc) Stop(grace time.Duration) error {
	if err := p.signalGroup(unix.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		if err := p.Kill(); err != nil {
			return err
		}
	}
	return p.Wait()
}

func (p *Proc) signalGroup(sig unix.Signal) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	// A stopped process would ignore SIGTERM until continued.
	if sig == unix.SIGTERM {
		unix.Kill(-p.pid, unix.SIGCONT)
	}
	if err := unix.Kill(-p.pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("send %v to process group of %v: %w", sig, p, err)
	}
	return nil
}

// stopAll stops every process at once: SIGTERM to all, one shared grace period, then
// SIGKILL to the survivors.
func stopAll(procs []*Proc, grace time.Duration) error {
	var errs []error
	for _, p := range procs {
		errs = append(errs, p.signalGroup(unix.SIGTERM))
	}
	deadline := time.After(grace)
	for _, p := range procs {
		select {
		case <-p.done:
		case <-deadline:
			// Grace is over: from here on every survivor gets SIGKILL at once.
			deadline = closedTimer
			errs = append(errs, p.Kill())
		}
	}
	return errors.Join(errs...)
}

// closedTimer is a channel that is always ready.
var closedTimer = func() <-chan time.Time {
	c := make(chan time.Time)
	close(c)
	return c
}()

// logTailLines is how much of each process log a failed test prints.
const logTailLines = 20

// logTails prints the last lines of every process log, for a failed test.
func (l *Lab) logTails(tb testing.TB) {
	l.mu.Lock()
	procs := append([]*Proc(nil), l.procs...)
	dir := l.dir
	l.mu.Unlock()
	for _, p := range procs {
		data, err := os.ReadFile(p.log)
		if err != nil {
			tb.Logf("lab: %v: read log: %v", p, err)
			continue
		}
		lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
		if len(lines) > logTailLines {
			lines = lines[len(lines)-logTailLines:]
		}
		tb.Logf("lab: last %d lines of %v (%s):\n%s", len(lines), p, p.log, bytes.Join(lines, []byte("\n")))
	}
	if dir != "" {
		tb.Logf("lab: logs kept in %s", dir)
	}
}
