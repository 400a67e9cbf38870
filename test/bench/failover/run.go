package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// The benchmark's cluster address and lab shape.
var vip = netip.MustParsePrefix("198.18.1.10/16")

const nodes = 3

// Timing of a run. Each is a bound or a deliberate wait, never a guess at how long
// something takes: waits for conditions poll with these as deadlines.
const (
	convergeLimit = 20 * time.Second       // one holder answering after start or heal
	steadyFor     = 200 * time.Millisecond // ARP answered by the holder alone before the fault
	failoverLimit = 60 * time.Second       // another node answers after the fault (kernel lifetimes expire in tens of seconds)
	stallFor      = 5 * time.Second        // sigstop and partition last this long (issue 4)
	observeFor    = time.Second            // recording goes on after the failover, before healing
	settleFor     = 500 * time.Millisecond // recording goes on after converging again
	pollEvery     = 5 * time.Millisecond
)

var (
	errUnsupported = errors.New("fault not supported")
	errNoProfile   = errors.New("no such profile")
)

// system is one HA implementation running on the lab's nodes; nodes count from 1.
type system interface {
	start(ctx context.Context) error                                                  // start every node and add the address
	restart(ctx context.Context, node int) error                                      // start node's daemon again after a kill
	signal(node int, sig syscall.Signal) error                                        // signal node's daemon ("the agent")
	move(ctx context.Context, from, to int) error                                     // move the address gracefully
	owner(ctx context.Context, rec *cluster.Recorder, vip netip.Addr) (string, error) // who should hold it now
}

// runConfig names one run.
type runConfig struct {
	impl, profile, fault string
	holder               string // clusterd: "leader" or "follower"
	run                  int
	bin                  string // clusterd binary
	dir                  string // the run's scratch directory
}

// runOnce builds a fresh lab, starts the implementation, waits until one node holds
// the address and answers alone, injects the fault, measures, heals, and reports.
// A Result with Error set means the run could not be carried out.
func runOnce(ctx context.Context, rc runConfig) (res Result) {
	res = Result{Time: time.Now().UTC(), Impl: rc.impl, Profile: rc.profile, Fault: rc.fault, Run: rc.run}
	if rc.impl == "clusterd" {
		res.Holder = rc.holder
	}
	if err := measure(ctx, rc, &res); err != nil {
		res.Error = err.Error()
	}
	return res
}

func measure(ctx context.Context, rc runConfig, res *Result) (err error) {
	l, err := lab.Create(ctx, lab.Options{Nodes: nodes, Client: true, Grace: time.Second, Dir: rc.dir})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	sys, err := newSystem(rc, l)
	if err != nil {
		return err
	}
	if err := sys.start(ctx); err != nil {
		return fmt.Errorf("start %s: %w", rc.impl, err)
	}
	rec, stopRec, err := startRecorder(ctx, l)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopRec()) }()
	from, err := steady(ctx, rec, l)
	if err != nil {
		return fmt.Errorf("before the fault: %w", err)
	}
	res.From = rec.Node(from)
	fromIdx := nodeIndex(res.From)
	if cs, ok := sys.(*clusterdSystem); ok {
		// What the fault hits, as the agents see it now (a move may have elected anew).
		res.Holder = "follower"
		if cs.leader(ctx) == res.From {
			res.Holder = "leader"
		}
	}
	t0, err := inject(ctx, rc.fault, sys, rec, l, fromIdx)
	if err != nil {
		return fmt.Errorf("inject %s: %w", rc.fault, err)
	}
	to, first, ok := waitNewHolder(ctx, rec, from.MAC.String(), t0, failoverLimit)
	if ok {
		res.Failover, res.To = true, rec.Recording().MACs[to]
		replies := rec.Replies(vip.Addr())
		since := t0
		if rc.fault == "move" {
			since = first // a graceful move: only the silence before the new holder counts
		}
		res.OutageMS = ms(first.Sub(lastBefore(replies, since, t0)))
		res.SilenceMS = ms(silence(replies, t0, first))
	}
	if err := sleep(ctx, observeFor); err != nil {
		return err
	}
	if err := heal(ctx, rc.fault, sys, rec, l, fromIdx, t0); err != nil {
		return fmt.Errorf("heal after %s: %w", rc.fault, err)
	}
	res.Converged = converge(ctx, rec, l) == nil
	if err := sleep(ctx, settleFor); err != nil {
		return err
	}
	owner, err := sys.owner(ctx, rec, vip.Addr())
	if err != nil {
		return fmt.Errorf("owner after healing: %w", err)
	}
	rep := rec.Report(map[netip.Addr]string{vip.Addr(): owner})
	v := rep.VIPs[0]
	if err := writeTrace(filepath.Join(rc.dir, "trace.txt"), t0, rep, rec.Replies(vip.Addr()), rec.Recording().MACs); err != nil {
		return err
	}
	res.TwoHolderMS, res.DoubleRounds, res.LeftBehind = ms(v.Overlap), v.DoubleRounds, v.LeftBehind
	if rc.impl == "clusterd" && rc.fault != "move" {
		res.Phases = readPhases(rc.dir)
	}
	if res.LeftBehind == nil {
		res.LeftBehind = []string{}
	}
	return nil
}

// startRecorder runs an overlap recorder for the address until stop is called, and
// returns once it watches every node and probes from the client.
func startRecorder(ctx context.Context, l *lab.Lab) (rec *cluster.Recorder, stop func() error, err error) {
	rec, err = cluster.NewRecorder(l, []netip.Addr{vip.Addr()})
	if err != nil {
		return nil, nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- rec.Run(rctx) }()
	stop = func() error {
		cancel()
		return <-done
	}
	select {
	case <-rec.Ready():
		return rec, stop, nil
	case err := <-done:
		cancel()
		return nil, nil, err
	case <-time.After(10 * time.Second):
		return nil, nil, errors.Join(errors.New("recorder not ready after 10s"), stop())
	}
}

func newSystem(rc runConfig, l *lab.Lab) (system, error) {
	switch rc.impl {
	case "clusterd":
		return newClusterd(l, rc.bin, rc.dir, rc.profile, rc.holder, vip)
	case "keepalived":
		return newKeepalived(l, rc.dir, rc.profile, vip)
	}
	return nil, fmt.Errorf("unknown implementation %q (have clusterd, keepalived)", rc.impl)
}

// inject makes the fault on node from (the holder) and returns when it began.
func inject(ctx context.Context, fault string, sys system, rec *cluster.Recorder, l *lab.Lab, from int) (time.Time, error) {
	h := l.Node(from)
	t0 := time.Now()
	switch fault {
	case "kill9":
		return t0, sys.signal(from, syscall.SIGKILL)
	case "kill9-all":
		return t0, killNamespace(h)
	case "sigstop":
		return t0, sys.signal(from, syscall.SIGSTOP)
	case "hostdeath":
		if err := h.LinkDown(); err != nil {
			return t0, err
		}
		rec.Dead(h, time.Now())
		return t0, killNamespace(h)
	case "partition":
		var others []*lab.Host
		for _, n := range l.Nodes() {
			if n != h {
				others = append(others, n)
			}
		}
		return t0, h.Partition(others...)
	case "move":
		return t0, sys.move(ctx, from, from%nodes+1)
	}
	return t0, fmt.Errorf("unknown fault %q", fault)
}

// heal undoes the fault: the stall and the partition last stallFor from t0; killed
// daemons start again; a dead host "reboots" (its kernel forgets the address, as a
// rebooted host's does), gets its link back and starts its daemon.
func heal(ctx context.Context, fault string, sys system, rec *cluster.Recorder, l *lab.Lab, from int, t0 time.Time) error {
	h := l.Node(from)
	switch fault {
	case "kill9", "kill9-all":
		return sys.restart(ctx, from)
	case "sigstop":
		if err := sleep(ctx, time.Until(t0.Add(stallFor))); err != nil {
			return err
		}
		return sys.signal(from, syscall.SIGCONT)
	case "hostdeath":
		if err := flushAddr(h, vip); err != nil {
			return err
		}
		// Revive only once the recorder has seen the removal: its events are stamped
		// on arrival, which may lag the link coming back.
		if err := waitReleased(ctx, rec, rec.Node(h)); err != nil {
			return err
		}
		if err := h.LinkUp(); err != nil {
			return err
		}
		rec.Revived(h, time.Now())
		return sys.restart(ctx, from)
	case "partition":
		if err := sleep(ctx, time.Until(t0.Add(stallFor))); err != nil {
			return err
		}
		return h.Heal()
	}
	return nil
}

// waitReleased polls until the recorder no longer sees node hold the address.
func waitReleased(ctx context.Context, rec *cluster.Recorder, node string) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		holders := rec.Report(nil).VIPs[0].Holders
		if !slices.Contains(holders, node) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recorder still sees %s hold %s 5s after its removal (holders %v)", node, vip.Addr(), holders)
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
}

// steady waits until exactly one node holds the address in its kernel and, for
// steadyFor, only its MAC answered ARP; it returns that node.
func steady(ctx context.Context, rec *cluster.Recorder, l *lab.Lab) (*lab.Host, error) {
	if err := converge(ctx, rec, l); err != nil {
		return nil, err
	}
	holders, err := kernelHolders(l)
	if err != nil {
		return nil, err
	}
	return holders[0], nil
}

// converge polls until one live node holds the address and the probe rounds of the
// last steadyFor were all answered by that node alone.
func converge(ctx context.Context, rec *cluster.Recorder, l *lab.Lab) error {
	deadline := time.Now().Add(convergeLimit)
	var last string
	for {
		holders, err := kernelHolders(l)
		if err != nil {
			return err
		}
		if len(holders) == 1 && answeredAlone(rec.Replies(vip.Addr()), holders[0].MAC.String(), time.Now().Add(-steadyFor), time.Now()) {
			return nil
		}
		last = fmt.Sprintf("kernel holders %v", holders)
		if time.Now().After(deadline) {
			return fmt.Errorf("%s has not one holder answering alone within %v (%s)", vip.Addr(), convergeLimit, last)
		}
		if err := sleep(ctx, pollEvery); err != nil {
			return err
		}
	}
}

// answeredAlone says that since `since` only mac answered ARP, without a gap of more
// than maxGap (counted from the last reply before `since`, so the window is covered)
// and up to less than maxGap ago.
func answeredAlone(replies []cluster.Reply, mac string, since, now time.Time) bool {
	var prev time.Time
	for _, r := range replies {
		if !r.At.After(since) {
			prev = r.At
			continue
		}
		if r.MAC != mac || prev.IsZero() || r.At.Sub(prev) > maxGap {
			return false
		}
		prev = r.At
	}
	return !prev.IsZero() && now.Sub(prev) < maxGap
}

// maxGap is the longest silence a steady holder may show the 5 ms prober: a lost
// round or two, not an address taken away and given back.
const maxGap = 4 * cluster.DefaultProbeInterval

// kernelHolders lists the nodes whose link is up and whose eth0 carries the address.
func kernelHolders(l *lab.Lab) ([]*lab.Host, error) {
	var out []*lab.Host
	for _, h := range l.Nodes() {
		has, err := cluster.HasAddr(h, vip.Addr())
		if err != nil {
			return nil, err
		}
		if has {
			out = append(out, h)
		}
	}
	return out, nil
}

// waitNewHolder polls the ARP replies until a MAC other than old answers after t0; it
// returns the MAC and the time of that first reply.
func waitNewHolder(ctx context.Context, rec *cluster.Recorder, old string, t0 time.Time, limit time.Duration) (string, time.Time, bool) {
	deadline := t0.Add(limit)
	for {
		for _, r := range rec.Replies(vip.Addr()) {
			if r.At.After(t0) && r.MAC != old {
				return r.MAC, r.At, true
			}
		}
		if time.Now().After(deadline) || sleep(ctx, pollEvery) != nil {
			return "", time.Time{}, false
		}
	}
}

// lastBefore returns the time of the last reply, from anyone, before at; if there is
// none, fallback.
func lastBefore(replies []cluster.Reply, at, fallback time.Time) time.Time {
	last := fallback
	for _, r := range replies {
		if !r.At.Before(at) {
			break
		}
		last = r.At
	}
	return last
}

// silence is the longest time without any reply between the last reply before from
// and the first reply at or after to: what a client that accepts any answer saw.
func silence(replies []cluster.Reply, from, to time.Time) time.Duration {
	prev := lastBefore(replies, from, from)
	var worst time.Duration
	for _, r := range replies {
		if r.At.Before(from) {
			continue
		}
		worst = max(worst, r.At.Sub(prev))
		if !r.At.Before(to) {
			break
		}
		prev = r.At
	}
	return worst
}

// killNamespace sends SIGKILL to every process in h's namespace (the agent, its
// companions, anything else) until none is left, like `ip netns pids NAME | xargs
// kill -9`. Processes are found by their /proc/PID/ns/net; this process is skipped
// (its threads visit namespaces through Host.Do).
func killNamespace(h *lab.Host) error {
	var want unix.Stat_t
	if err := unix.Stat("/run/netns/"+h.Name, &want); err != nil {
		return fmt.Errorf("stat namespace %s: %w", h.Name, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		entries, err := os.ReadDir("/proc")
		if err != nil {
			return err
		}
		var left []int
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			var st unix.Stat_t
			if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
				left = append(left, pid)
				unix.Kill(pid, unix.SIGKILL)
			}
		}
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in %s after SIGKILL", left, h.Name)
		}
		time.Sleep(pollEvery)
	}
}

// flushAddr removes the address from h's eth0 if it is there (`ip -n NODE addr del
// ADDR dev eth0`), standing in for the reboot of a dead host.
func flushAddr(h *lab.Host, p netip.Prefix) error {
	nh, err := h.Handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	link, err := nh.LinkByName(h.Link)
	if err != nil {
		return fmt.Errorf("find %s in %s: %w", h.Link, h.Name, err)
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if err := nh.AddrDel(link, a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("delete %s from %s in %s: %w", p, h.Link, h.Name, err)
	}
	return nil
}

// writeTrace writes the recorder's report and the ARP answers as runs of one MAC,
// times relative to the fault, for a look at a run kept with --keep.
func writeTrace(path string, t0 time.Time, rep cluster.Report, replies []cluster.Reply, macs map[string]string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "fault at %+.3fs from the start of recording\n%s\nARP answers (ms from the fault):\n", t0.Sub(rep.Start).Seconds(), rep)
	for i := 0; i < len(replies); {
		j := i
		for j+1 < len(replies) && replies[j+1].MAC == replies[i].MAC {
			j++
		}
		fmt.Fprintf(&b, "  %9.1f .. %9.1f  %s (%d replies, rounds %d..%d)\n", ms(replies[i].At.Sub(t0)), ms(replies[j].At.Sub(t0)),
			cmp.Or(macs[replies[i].MAC], replies[i].MAC), j-i+1, replies[i].Round, replies[j].Round)
		i = j + 1
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func nodeIndex(name string) int {
	i, _ := strconv.Atoi(name[1:])
	return i
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
