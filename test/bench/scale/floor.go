package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// companionSuffix marks a fencing companion's entry among the sampled processes.
const companionSuffix = "/fence"

// companionPid finds the agent's fencing companion: its child running `clusterd
// fence` (any of the agent's threads may have forked it).
func companionPid(agent int) (int, bool) {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", agent))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			if args := strings.Split(string(cmd), "\x00"); len(args) > 1 && args[1] == "fence" {
				return pid, true
			}
		}
	}
	return 0, false
}

// wakeFloorArg makes the benchmark binary run runWakeFloor instead.
const wakeFloorArg = "--internal-wake-floor"

// The periods of the default profile's wake-ups that no idle agent avoids: the
// lease loop's renewal tick and raft's leader-lease check.
const (
	floorRenew       = 25 * time.Millisecond
	floorLeaderLease = 50 * time.Millisecond
)

// runWakeFloor does nothing but what an idle agent cannot avoid: a Go program woken
// by a 25 ms ticker (writing one byte, as a renewal's datagram or companion line
// does) and a 50 ms ticker. Its CPU is the floor of an idle agent's on this machine.
func runWakeFloor() {
	renew, lease := time.NewTicker(floorRenew), time.NewTicker(floorLeaderLease)
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		os.Exit(1)
	}
	for {
		select {
		case <-renew.C:
			null.Write([]byte{0})
		case <-lease.C:
		}
	}
}

// wakeFloor measures runWakeFloor's CPU over 10 s and describes it.
func (e *env) wakeFloor(ctx context.Context) string {
	self, err := os.Executable()
	if err != nil {
		return "not measured (" + err.Error() + ")"
	}
	cmd := exec.CommandContext(ctx, self, wakeFloorArg)
	if err := cmd.Start(); err != nil {
		return "not measured (" + err.Error() + ")"
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	time.Sleep(time.Second)
	cpu, _, err := idleCPU(ctx, map[string]int{"floor": cmd.Process.Pid}, 10*time.Second)
	if err != nil {
		return "not measured (" + err.Error() + ")"
	}
	return fmt.Sprintf("a Go process woken every %v (one write) and every %v, and nothing else, uses %.2f %% of a core: the floor under an idle agent on this machine",
		floorRenew, floorLeaderLease, cpu["floor"])
}
