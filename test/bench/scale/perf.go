package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
)

// The agent has no pprof endpoint; with --perf the benchmark records CPU profiles of
// the agents with Linux perf (Debian linux-perf) during the phases it measures, e.g.
// perf-single-idle-n1.data, read with `perf report -i FILE --no-children`.

// perfRecord starts `perf record -g` on each running agent, writing
// DIR/perf-PHASE-ID.data; the returned function stops them (SIGINT: perf writes its
// file and exits). Without --perf it does nothing.
func (e *env) perfRecord(dir, phase string, agents ...*cluster.Agent) func() {
	if !e.o.perf {
		return func() {}
	}
	var cmds []*exec.Cmd
	for _, a := range agents {
		p := a.Proc()
		if p == nil {
			continue
		}
		out := filepath.Join(dir, fmt.Sprintf("perf-%s-%s.data", phase, a.ID))
		cmd := exec.Command("perf", "record", "-F", "499", "-g", "-o", out, "-p", strconv.Itoa(p.Pid()))
		log, _ := os.Create(out + ".log")
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			fmt.Fprintf(e.log, "  perf record on %s: %v\n", a.ID, err)
			continue
		}
		cmds = append(cmds, cmd)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches
	return func() {
		for _, c := range cmds {
			c.Process.Signal(syscall.SIGINT)
		}
		var names []string
		for _, c := range cmds {
			c.Wait()
			names = append(names, c.Args[len(c.Args)-3])
		}
		if len(names) > 0 {
			fmt.Fprintf(e.log, "  perf profiles: %s\n", strings.Join(names, " "))
		}
	}
}
