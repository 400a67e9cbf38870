package agent

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
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
// The agent writes one line per change:
//
//	D <CLOCK_BOOTTIME ns>             the lease deadline (0: it holds nothing)
//	K <CLOCK_BOOTTIME ns> [IP ...]    addresses to leave alone at the lease deadline
//	                                  (on_quorum_loss = keep), honoured until the given
//	                                  time unless refreshed; "K 0" clears the list
//
// Kept addresses survive the lease deadline only: they go when the pipe closes (keep
// is about a lost quorum, not a dead agent), on a signal, and when the keep list is
// not refreshed in time (the agent stalled).

// fenceMsg is one parsed line from the agent.
type fenceMsg struct {
	keepList bool          // a K line (else a D line)
	at       time.Duration // D: the lease deadline; K: until when the list holds
	keep     []netip.Addr
}

// parseFenceLine reads one line of the companion protocol.
func parseFenceLine(line string) (fenceMsg, error) {
	f := strings.Fields(line)
	if len(f) < 2 || (f[0] != "D" && f[0] != "K") || (f[0] == "D" && len(f) != 2) {
		return fenceMsg{}, fmt.Errorf("fence: line %q is neither \"D <ns>\" nor \"K <ns> [IP ...]\"", line)
	}
	ns, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil || ns < 0 {
		return fenceMsg{}, fmt.Errorf("fence: line %q: %q is not a CLOCK_BOOTTIME time in nanoseconds", line, f[1])
	}
	m := fenceMsg{keepList: f[0] == "K", at: time.Duration(ns)}
	for _, s := range f[2:] {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return fenceMsg{}, fmt.Errorf("fence: line %q: %q is not an IP address", line, s)
		}
		m.keep = append(m.keep, ip)
	}
	return m, nil
}

// fenceState is what the companion knows; due is its pure decision.
type fenceState struct {
	deadline  time.Duration // lease deadline; 0 = none
	keepUntil time.Duration // keep list honoured until then
	keep      map[netip.Addr]bool
	cleared   bool // the addresses were removed for this deadline
	keptGone  bool // the kept addresses were removed for this keep list
}

// fenceStep is what to do now and when to look again.
type fenceStep struct {
	remove    bool          // remove the recorded addresses ...
	spareKept bool          // ... except the kept ones
	next      time.Duration // 0: nothing pending
}

// due decides, at now, whether the lease deadline or the keep list ran out.
func (s *fenceState) due(now time.Duration) fenceStep {
	var st fenceStep
	keeping := len(s.keep) > 0 && now < s.keepUntil
	if s.deadline > 0 && now >= s.deadline {
		if !s.cleared || (!keeping && len(s.keep) > 0 && !s.keptGone) {
			st.remove, st.spareKept = true, keeping
			s.cleared = true
			s.keptGone = !keeping
		}
		if keeping {
			st.next = s.keepUntil
		}
		return st
	}
	if s.deadline > 0 {
		st.next = s.deadline
	}
	return st
}

// take applies one message from the agent.
func (s *fenceState) take(m fenceMsg) {
	if !m.keepList {
		if m.at != s.deadline {
			s.deadline, s.cleared, s.keptGone = m.at, false, false
		}
		return
	}
	s.keepUntil = m.at
	s.keep = make(map[netip.Addr]bool, len(m.keep))
	for _, ip := range m.keep {
		s.keep[ip] = true
	}
	s.keptGone = false
}

// RunFence is the companion's main loop.
func RunFence(ctx context.Context, dataDir string, in io.Reader, log *slog.Logger) error {
	h, err := netlink.NewHandle()
	if err != nil {
		return fmt.Errorf("fence: open netlink: %w (needs CAP_NET_ADMIN)", err)
	}
	defer h.Close()
	raisePriority()
	lines := make(chan fenceMsg)
	eof := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			m, err := parseFenceLine(sc.Text())
			if err != nil {
				log.Warn("fence: ignoring a line from the agent", "err", err)
				continue
			}
			select {
			case lines <- m:
			case <-ctx.Done():
				return
			}
		}
		eof <- sc.Err()
	}()
	var s fenceState
	remove := func(why string, spare map[netip.Addr]bool) {
		start := time.Now()
		var keep func(netip.Addr) bool
		if len(spare) > 0 {
			keep = func(ip netip.Addr) bool { return spare[ip] }
		}
		n, err := resource.RemoveRecordedExcept(h, dataDir, keep)
		if n > 0 || err != nil {
			log.Warn("fence: removed this node's cluster addresses", "why", why, "count", n, "kept", len(spare), "took", time.Since(start).String(), "err", err)
		}
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			remove("fence stopped by a signal", nil)
			return nil
		case err := <-eof:
			remove("the agent exited (its pipe closed); kept addresses go too", nil)
			return err
		case m := <-lines:
			s.take(m)
		case <-timer.C:
		}
		step := s.due(lease.Boottime())
		switch {
		case step.remove && step.spareKept:
			remove("the agent's lease deadline passed; leaving the addresses it keeps through the quorum loss (on_quorum_loss = keep)", s.keep)
		case step.remove:
			remove("the agent's lease deadline passed without renewal (agent stalled)", nil)
		}
		timer.Stop()
		if step.next > 0 {
			timer.Reset(max(step.next-lease.Boottime(), 0))
		}
	}
}

// fencer starts the companion and feeds it deadlines.
type fencer struct {
	log *slog.Logger
	cmd *exec.Cmd
	w   io.WriteCloser

	// lead is how close the deadline the companion knows may come before a later
	// one is sent (fenceLead of the lease timers).
	lead time.Duration

	mu        sync.Mutex // guards the fields below and the writes
	last      time.Duration
	keep      []netip.Addr // last keep list sent
	keepUntil time.Duration
}

// sendDeadline decides whether the companion, which knows last, is told the lease
// deadline d at now. An earlier deadline goes at once (the lease was shortened: the
// companion must not wait for the later one it knows). A later one goes only once
// last is less than lead away: the companion's deadline stays the agent's own or
// lags it, so it acts no later than the lease ends and never before the agent's
// own drop when the lease is lost (the agent keeps checking each round, and then
// sends the final deadline). A stalled agent's addresses go at least lead after its
// last round instead of Lease-Renew after it. A line every round cost the idle
// companion 40 wake-ups a second.
func sendDeadline(last, d, now, lead time.Duration) bool {
	switch {
	case d == last:
		return false
	case d < last:
		return true
	}
	return last-now < lead
}

// fenceLead is sendDeadline's lead for the lease timers t: Lease - 2*Renew (100 ms
// in the default profile, 30 ms in the fast one), so a line every other round.
func fenceLead(t Timers) time.Duration { return t.Lease - 2*t.Renew }

// startFence starts `clusterd fence --data-dir DIR` as its own process group (a
// Ctrl-C or a group kill of the agent must not take it along).
func startFence(dataDir string, lead time.Duration, log *slog.Logger) (*fencer, error) {
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
	return &fencer{log: log, cmd: cmd, w: w, lead: lead}, nil
}

// set sends a new deadline when sendDeadline says so.
func (f *fencer) set(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !sendDeadline(f.last, d, lease.Boottime(), f.lead) {
		return
	}
	f.last = d
	if _, err := fmt.Fprintf(f.w, "D %d\n", int64(d)); err != nil {
		f.log.Error("fencing companion unreachable", "err", err)
	}
}

// setKeep sends the keep list, valid until until (CLOCK_BOOTTIME), when it changed
// or its validity moved by a second or more (at most one line a second while keeping).
func (f *fencer) setKeep(ips []netip.Addr, until time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if slices.Equal(ips, f.keep) && (len(ips) == 0 || until-f.keepUntil < time.Second) {
		return
	}
	f.keep, f.keepUntil = ips, until
	var b strings.Builder
	fmt.Fprintf(&b, "K %d", int64(until))
	if len(ips) == 0 {
		b.Reset()
		b.WriteString("K 0")
	}
	for _, ip := range ips {
		b.WriteString(" " + ip.String())
	}
	if _, err := fmt.Fprintln(f.w, b.String()); err != nil {
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
