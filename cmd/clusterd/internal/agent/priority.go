package agent

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// agentNice is the scheduling priority the agent (and its fencing companion) runs at
// when real-time scheduling is off or not permitted: -10 gives the agent about ten
// times the share of a nice-0 hog under CFS. Measured, it is not enough: with
// stress-ng on both cores, a 10-minute steady run still lost ~18 leases per address
// (test/bench/failover/README.md).
const agentNice = -10

// DefaultRealtimePriority is the SCHED_RR priority of every agent thread (the
// realtime_priority key; 0 turns real-time scheduling off). Lease renewals are due
// every 25 ms (10 ms in the fast profile); a CFS task, even at nice -10, can wait longer
// than a lease for a core on a saturated machine, and a Go program needs every one of
// its threads to run, since a preempted thread holding a runtime P stalls the
// goroutines queued on it. Cluster stacks do the same: corosync runs SCHED_RR,
// keepalived has vrrp_rt_priority. The lowest priority, 1, is enough to run before
// every CFS task, and leaves the kernel's own real-time threads (watchdogs, migration,
// priority 50-99) ahead of the agent. The kernel's RT throttling
// (sched_rt_runtime_us, by default 950 ms of every 1 s) keeps a runaway agent from
// starving the machine.
const DefaultRealtimePriority = 1

// raisePriority renices every thread of this process (Linux applies nice per thread;
// threads created later inherit it from their creator). It returns how many threads
// it changed; lacking CAP_SYS_NICE it changes none and says why. The fencing companion
// calls it at start; a companion started by a real-time agent is real-time already
// (the policy is inherited across fork and exec).
func raisePriority() (int, error) {
	return eachThread(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, agentNice) })
}

// setRealtime puts every thread of this process under SCHED_RR at prio (1-99).
// Threads created later inherit the policy from the thread that creates them, and
// so do child processes (the fencing companion; hooks and health checks too, see
// normalScheduling). It returns how many threads it changed.
func setRealtime(prio int) (int, error) {
	if prio < 1 || prio > 99 {
		return 0, fmt.Errorf("real-time priority %d is not 1-99", prio)
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_RR, Priority: uint32(prio)}
	return eachThread(func(tid int) error { return unix.SchedSetAttr(tid, attr, 0) })
}

// normalScheduling returns process pid (a hook or health check the agent started)
// to SCHED_OTHER at nice 0: a child inherits the agent's real-time policy, and an
// operator's script has no business running before every other process.
func normalScheduling(pid int) error {
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0} // SCHED_OTHER
	return unix.SchedSetAttr(pid, attr, 0)
}

// childScheduling is normalScheduling for a hook or check the agent just started;
// a failure (the child already exited) leaves nothing to fix.
func childScheduling(pid int) { _ = normalScheduling(pid) }

// schedule applies the agent's scheduling: SCHED_RR at prio when prio > 0, else (or
// when that is refused) nice -10. It returns a sentence for the log saying what
// holds, and an error saying what was refused and how to fix it.
func schedule(prio int) (string, error) {
	var rtErr error
	if prio > 0 {
		n, err := setRealtime(prio)
		if err == nil {
			return fmt.Sprintf("real-time scheduling: SCHED_RR priority %d on %d threads (kernel RT throttling keeps %s for other tasks)", prio, n, rtLeftOver()), nil
		}
		rtErr = fmt.Errorf("cannot run the agent at real-time priority (SCHED_RR %d) on %d threads: %w (grant CAP_SYS_NICE, e.g. AmbientCapabilities=CAP_SYS_NICE in the unit, or run as root; under cgroup v1 with RT group scheduling give the cgroup cpu.rt_runtime_us; or set realtime_priority = 0 to run at nice %d only)", prio, n, err, agentNice)
	}
	n, err := raisePriority()
	if err != nil {
		return "", errors.Join(rtErr, fmt.Errorf("cannot raise the agent's scheduling priority to nice %d (%d threads changed): %w; lease renewals may lapse on a busy machine (grant CAP_SYS_NICE or run as root)", agentNice, n, err))
	}
	return fmt.Sprintf("scheduling: nice %d on %d threads (real-time scheduling off: realtime_priority = 0 or refused)", agentNice, n), rtErr
}

// rtLeftOver reads how much of each RT period the kernel keeps for non-RT tasks.
func rtLeftOver() string {
	rt, err1 := readInt("/proc/sys/kernel/sched_rt_runtime_us")
	period, err2 := readInt("/proc/sys/kernel/sched_rt_period_us")
	switch {
	case err1 != nil || err2 != nil || period <= 0:
		return "an unknown share"
	case rt < 0:
		return "nothing (sched_rt_runtime_us = -1: throttling is off)"
	}
	return fmt.Sprintf("%d ms of every %d ms", (period-rt)/1000, period/1000)
}

func readInt(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := string(b)
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == ' ') {
		s = s[:len(s)-1]
	}
	return strconv.Atoi(s)
}

// eachThread runs f on every thread of this process; it returns how many succeeded
// and the last error.
func eachThread(f func(tid int) error) (int, error) {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return 0, err
	}
	n := 0
	var last error
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := f(tid); err != nil {
			last = err
			continue
		}
		n++
	}
	return n, last
}
