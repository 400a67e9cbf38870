package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/vishvananda/netlink"
)

// subscribeBuffer is the receive buffer of each address subscription: a batch of
// 10,000 adds is about 1.5 MB of netlink messages arriving at once.
const subscribeBuffer = 32 << 20

// kernelView is how many of the watched addresses the node kernels hold.
type kernelView struct {
	Distinct int            // watched addresses held by at least one node
	PerNode  map[string]int // node name (n1…) → watched addresses it holds
}

// kernelWatch follows the watched addresses in every node's kernel through netlink
// address subscriptions (`ip -n NS monitor address`): exact arrival times, no
// polling load on the nodes. Events are stamped when read here.
type kernelWatch struct {
	want  map[netip.Addr]bool
	names map[*lab.Host]string

	mu      sync.Mutex // guards the fields below
	held    map[string]map[netip.Addr]bool
	holders map[netip.Addr]int
	waiters []*kernelWaiter
	err     error
}

type kernelWaiter struct {
	cond func(kernelView) bool
	at   time.Time
	done chan struct{}
}

// watchKernel subscribes in every node namespace, then seeds from a dump; it runs
// until ctx ends.
func watchKernel(ctx context.Context, nodes []*lab.Host, addrs []netip.Addr) (*kernelWatch, error) {
	w := &kernelWatch{want: map[netip.Addr]bool{}, names: map[*lab.Host]string{},
		held: map[string]map[netip.Addr]bool{}, holders: map[netip.Addr]int{}}
	for _, a := range addrs {
		w.want[a] = true
	}
	for i, h := range nodes {
		name := fmt.Sprintf("n%d", i+1)
		w.names[h] = name
		w.held[name] = map[netip.Addr]bool{}
		ch := make(chan netlink.AddrUpdate, 4096)
		opts := netlink.AddrSubscribeOptions{ReceiveBufferSize: subscribeBuffer, ReceiveBufferForceSize: true,
			ErrorCallback: func(err error) { w.fail(fmt.Errorf("address subscription in %s: %w", h.Name, err)) }}
		if err := h.Do(func() error { return netlink.AddrSubscribeWithOptions(ch, ctx.Done(), opts) }); err != nil {
			return nil, fmt.Errorf("subscribe to address events in %s: %w", h.Name, err)
		}
		go func() {
			for u := range ch {
				ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
				if ok {
					w.note(name, ip.Unmap(), u.NewAddr, time.Now())
				}
			}
		}()
		if err := w.seed(h, name); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *kernelWatch) seed(h *lab.Host, name string) error {
	nh, err := h.Handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	as, err := nh.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses in %s: %w", h.Name, err)
	}
	now := time.Now()
	for _, a := range as {
		if ip, ok := netip.AddrFromSlice(a.IP); ok {
			w.note(name, ip.Unmap(), true, now)
		}
	}
	return nil
}

func (w *kernelWatch) fail(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// note records one address event and wakes the waiters it satisfies.
func (w *kernelWatch) note(node string, ip netip.Addr, added bool, at time.Time) {
	if !w.want[ip] {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	set := w.held[node]
	switch {
	case added && !set[ip]:
		set[ip] = true
		w.holders[ip]++
	case !added && set[ip]:
		delete(set, ip)
		if w.holders[ip]--; w.holders[ip] == 0 {
			delete(w.holders, ip)
		}
	default:
		return // a lifetime refresh, or a repeated event
	}
	w.wakeLocked(at)
}

func (w *kernelWatch) viewLocked() kernelView {
	v := kernelView{Distinct: len(w.holders), PerNode: map[string]int{}}
	for n, s := range w.held {
		v.PerNode[n] = len(s)
	}
	return v
}

func (w *kernelWatch) wakeLocked(at time.Time) {
	if len(w.waiters) == 0 {
		return
	}
	v := w.viewLocked()
	kept := w.waiters[:0]
	for _, k := range w.waiters {
		if k.cond(v) {
			k.at = at
			close(k.done)
			continue
		}
		kept = append(kept, k)
	}
	w.waiters = kept
}

// View returns the current counts.
func (w *kernelWatch) View() kernelView {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.viewLocked()
}

// HeldBy returns the watched addresses node holds.
func (w *kernelWatch) HeldBy(node string) []netip.Addr {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []netip.Addr
	for ip := range w.held[node] {
		out = append(out, ip)
	}
	return out
}

// errTimeout means a condition was not reached within its limit.
var errTimeout = errors.New("not reached")

// Wait returns the arrival time of the event that made cond true (now, if it already
// is), or an error after limit.
func (w *kernelWatch) Wait(ctx context.Context, limit time.Duration, cond func(kernelView) bool) (time.Time, error) {
	k := &kernelWaiter{cond: cond, done: make(chan struct{})}
	w.mu.Lock()
	if cond(w.viewLocked()) {
		w.mu.Unlock()
		return time.Now(), nil
	}
	w.waiters = append(w.waiters, k)
	w.mu.Unlock()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-k.done:
		return k.at, nil
	case <-t.C:
	case <-ctx.Done():
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-k.done:
		return k.at, nil
	default:
	}
	for i, x := range w.waiters {
		if x == k {
			w.waiters = append(w.waiters[:i], w.waiters[i+1:]...)
			break
		}
	}
	v := w.viewLocked()
	if w.err != nil {
		return time.Time{}, fmt.Errorf("%w within %v (kernels: %d distinct, per node %v): %v", errTimeout, limit, v.Distinct, v.PerNode, w.err)
	}
	return time.Time{}, fmt.Errorf("%w within %v (kernels: %d distinct, per node %v)", errTimeout, limit, v.Distinct, v.PerNode)
}

// procSample is one reading of a process's /proc files.
type procSample struct {
	at    time.Time
	ticks int64 // utime + stime, in clock ticks
	rssKB int64
}

// clockTick is USER_HZ: /proc/PID/stat counts CPU time in 1/100 s on Linux, whatever
// the kernel's HZ.
const clockTick = 10 * time.Millisecond

// readProc reads /proc/PID/stat (utime, stime) and /proc/PID/status (VmRSS).
func readProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return s, err
	}
	if s.ticks, err = parseStatTicks(string(b)); err != nil {
		return s, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	b, err = os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return s, err
	}
	if s.rssKB, err = parseRSS(string(b)); err != nil {
		return s, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return s, nil
}

// parseStatTicks returns utime + stime (fields 14 and 15) of a /proc/PID/stat line;
// the command name (field 2) may contain spaces, so fields count from its ')'.
func parseStatTicks(stat string) (int64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:]) // f[0] is field 3 (state)
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("utime/stime: %w", err)
	}
	return u + s, nil
}

// parseRSS returns VmRSS in kB from /proc/PID/status.
func parseRSS(status string) (int64, error) {
	for _, line := range strings.Split(status, "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, fmt.Errorf("VmRSS line %q is not \"N kB\"", line)
			}
			return strconv.ParseInt(f[0], 10, 64)
		}
	}
	return 0, errors.New("no VmRSS line")
}

// cpuPercent is the CPU used between two samples, in percent of one core.
func cpuPercent(a, b procSample) float64 {
	wall := b.at.Sub(a.at)
	if wall <= 0 {
		return 0
	}
	return 100 * float64(time.Duration(b.ticks-a.ticks)*clockTick) / float64(wall)
}

// machineSample is the "cpu" line of /proc/stat: busy and total ticks of all CPUs.
type machineSample struct{ busy, total int64 }

// readMachine reads /proc/stat's first line (user nice system idle iowait irq
// softirq steal ...); idle and iowait are not busy.
func readMachine() (machineSample, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineSample{}, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return parseMachine(line)
}

func parseMachine(line string) (machineSample, error) {
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return machineSample{}, fmt.Errorf("/proc/stat: first line %q is not the cpu total", line)
	}
	var m machineSample
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return m, fmt.Errorf("/proc/stat: field %d %q: %w", i+1, v, err)
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		m.total += n
		if i != 3 && i != 4 {
			m.busy += n
		}
	}
	return m, nil
}

// busyCores is how many cores the machine kept busy between two samples.
func busyCores(a, b machineSample, cores int) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(cores) * float64(b.busy-a.busy) / float64(b.total-a.total)
}

// loadavg returns /proc/loadavg's 1-minute figure (-1 if unreadable).
func loadavg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// idleCPU samples the processes, waits d, samples again and returns each one's CPU
// in percent of a core and its last RSS in MB.
func idleCPU(ctx context.Context, pids map[string]int, d time.Duration) (cpu, rssMB map[string]float64, err error) {
	first := map[string]procSample{}
	for n, pid := range pids {
		if first[n], err = readProc(pid); err != nil {
			return nil, nil, err
		}
	}
	select {
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	case <-time.After(d):
	}
	cpu, rssMB = map[string]float64{}, map[string]float64{}
	for n, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return nil, nil, err
		}
		cpu[n], rssMB[n] = cpuPercent(first[n], s), float64(s.rssKB)/1024
	}
	return cpu, rssMB, nil
}
