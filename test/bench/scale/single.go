package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// convergeLimit bounds every wait for a whole workload to come up or go.
const convergeLimit = 90 * time.Second

// startAgents starts n agents with info-level logs (test/cluster's configs log at
// debug, which at thousands of addresses measures the logger): node 1 bootstraps,
// the others join through it.
func startAgents(ctx context.Context, c *cluster.Cluster, n, realtime int, profile string) ([]*cluster.Agent, error) {
	var as []*cluster.Agent
	for i := 1; i <= n; i++ {
		a := c.Agent(i, cluster.Options{})
		cfg := fmt.Sprintf("node_id = %q\ndata_dir = %q\nraft_addr = \"%s:%d\"\napi_addr = %q\nlog_level = \"info\"\n",
			a.ID, a.DataDir, a.Host.Addr.Addr(), cluster.RaftPort, a.APIAddr())
		if realtime >= 0 {
			cfg += fmt.Sprintf("realtime_priority = %d\n", realtime)
		}
		if profile != "" {
			cfg += fmt.Sprintf("profile = %q\n", profile)
		}
		if i == 1 {
			cfg += "bootstrap = true\n"
		} else {
			cfg += fmt.Sprintf("join = %q\ntoken = %q\n", as[0].URL(), c.Token())
		}
		if err := os.MkdirAll(filepath.Dir(a.Config), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(a.Config, []byte(cfg), 0o644); err != nil {
			return nil, err
		}
		if err := c.Restart(ctx, a); err != nil {
			return nil, err
		}
		as = append(as, a)
	}
	return as, nil
}

// labDir makes the directory for a case's lab logs and captures.
func labDir(dir string) string {
	d := filepath.Join(dir, "lab")
	os.MkdirAll(d, 0o755)
	return d
}

// single is case 1: one node, e.o.single addresses on eth0, with or without NetBIOS.
func (e *env) single(ctx context.Context, dir string, netbios bool) error {
	cs, n := "single", e.o.single
	if netbios {
		cs = "single-netbios"
	}
	l, err := lab.Create(ctx, lab.Options{Nodes: 1, Client: true, WINS: netbios, Dir: labDir(dir)})
	if err != nil {
		return err
	}
	defer l.Close()
	if netbios {
		if _, err := l.StartWINS("min wins ttl = 30", "max wins ttl = 60"); err != nil {
			return err
		}
	}
	c := cluster.New(l, e.o.bin, dir)
	agents, err := startAgents(ctx, c, 1, e.o.realtime, e.o.profile)
	if err != nil {
		return err
	}
	a := agents[0]
	w := newWorkload(n, netbios)
	file, empty, err := w.write(dir)
	if err != nil {
		return err
	}
	kw, err := watchKernel(ctx, l.Nodes(), w.Addrs)
	if err != nil {
		return err
	}
	var capture *lab.Capture
	if netbios {
		if capture, err = l.Capture("udp port 137", "-B", captureBuffer); err != nil {
			return err
		}
	}
	tApply := time.Now()
	stop := e.perfRecord(dir, "apply", a)
	lagStop := watchAgentLag(ctx, c, agents)
	t0, err := e.singleOnline(ctx, cs, c, a, kw, w, file)
	lags := lagStop()
	e.fig(cs, "worst agent timer lag while coming online", ms(maxLag(lags)), "ms", e.lagLimit(), "GET /readyz every 500 ms during the apply (worst lag since the last read)", lagNote(lags))
	stop()
	if err != nil {
		return err
	}
	e.reachable(ctx, cs, l, w, func(mac string) bool { return mac == l.Node(1).MAC.String() }, "from n1")
	e.idle(ctx, cs, dir, map[string]*cluster.Agent{"n1": a}, n, "")
	t1, err := e.singleOffline(ctx, cs, c, a, kw, w, empty)
	if err != nil {
		return err
	}
	if capture != nil {
		e.releases(cs, capture, w, t0, t1)
	}
	e.leaseHealth(cs, "during the case", labDir(dir), tApply, "")
	return nil
}

// singleOnline applies the workload and times it until every address is in the
// kernel and online in the status; it returns when the apply started.
func (e *env) singleOnline(ctx context.Context, cs string, c *cluster.Cluster, a *cluster.Agent, kw *kernelWatch, w wl, file string) (time.Time, error) {
	n := len(w.Addrs)
	cmd := fmt.Sprintf("clusterd apply -f FILE (%d [[resource]], one raft entry)", n)
	t0 := time.Now()
	if out, err := c.CLI(ctx, a, "apply", "-f", file); err != nil {
		return t0, fmt.Errorf("%w\n%s", err, out)
	}
	e.fig(cs, "apply command returns", ms(time.Since(t0)), "ms", 0, cmd, "committed, before any address is added")
	max := 1000.0
	if w.NetBIOS {
		max = 2000
	}
	if tk, err := kw.Wait(ctx, convergeLimit, func(v kernelView) bool { return v.Distinct == n }); err != nil {
		e.failed(cs, fmt.Sprintf("all %d in the kernel", n), "ms", 0, cmd, err)
	} else {
		e.fig(cs, fmt.Sprintf("all %d in the kernel", n), ms(tk.Sub(t0)), "ms", 0, cmd, "netlink address events in the node's namespace")
	}
	names := nameSet(w.Names)
	what := "online"
	if w.NetBIOS {
		what = "online, every name registered with WINS"
	}
	ts, st, err := statusWait(ctx, c, a, convergeLimit, 20*time.Millisecond, func(st api.Status) bool {
		return countStatus(st, names, w.NetBIOS).Online == n
	})
	if err != nil {
		e.failed(cs, fmt.Sprintf("all %d %s in status", n, what), "ms", max, cmd, fmt.Errorf("%w; states: %s", err, states(st, names)))
		return t0, nil
	}
	e.fig(cs, fmt.Sprintf("all %d %s in status", n, what), ms(ts.Sub(t0)), "ms", max, cmd, "GET /v1/status polled every 20 ms")
	return t0, nil
}

// reachable sweeps the workload's addresses with raw ARP from the client.
func (e *env) reachable(ctx context.Context, cs string, l *lab.Lab, w wl, accept func(string) bool, who string) {
	name := fmt.Sprintf("addresses answering ARP %s", who)
	cmd := fmt.Sprintf("ARP sweep of %d addresses from the client (raw requests, batches of %d)", len(w.Addrs), cluster.DefaultSweepBatch)
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	t0 := time.Now()
	ans, err := cluster.ARPSweep{}.Sweep(sctx, l.Client(), w.Addrs, accept)
	note := fmt.Sprintf("of %d; sweep %.0f ms", len(w.Addrs), ms(time.Since(t0)))
	if err != nil {
		e.rep.add(Figure{Case: cs, Name: name, Value: float64(len(ans)), Unit: "addresses", Command: cmd, Note: note, Error: err.Error()})
		return
	}
	e.fig(cs, name, float64(len(ans)), "addresses", 0, cmd, note)
}

// idleSettle is how long idle waits after the figure before it for the announcement
// rounds to end.
const idleSettle = 5 * time.Second

// idle samples the agents' CPU and RSS while they hold held addresses and nothing
// changes.
func (e *env) idle(ctx context.Context, cs, dir string, agents map[string]*cluster.Agent, held int, leader string) {
	pids := map[string]int{}
	var all []*cluster.Agent
	for id, a := range agents {
		if p := a.Proc(); p != nil {
			pids[id] = p.Pid()
			all = append(all, a)
			if len(agents) == 1 {
				if c, ok := companionPid(p.Pid()); ok {
					pids[id+companionSuffix] = c
				}
			}
		}
	}
	// The last of the three announcement rounds (1.1 s apart) and the first
	// self-probes follow the online figure: idle starts once they are over.
	select {
	case <-ctx.Done():
		return
	case <-time.After(idleSettle):
	}
	cmd := fmt.Sprintf("nothing: %v idle (after %v for the announcements to end), /proc/PID/stat utime+stime and /proc/PID/status VmRSS", e.o.idle, idleSettle)
	stop := e.perfRecord(dir, "idle", all...)
	m0, _ := readMachine()
	cpu, rss, err := idleCPU(ctx, pids, e.o.idle)
	m1, _ := readMachine()
	stop()
	agentsCPU := 0.0
	for _, v := range cpu {
		agentsCPU += v / 100
	}
	cmd += fmt.Sprintf(" (machine: %.2f of %d cores busy, %.2f of them these agents; load %.1f)", busyCores(m0, m1, runtime.NumCPU()), runtime.NumCPU(), agentsCPU, loadavg())
	if err != nil {
		e.failed(cs, "agent idle CPU", "%", 1, cmd, err)
		return
	}
	if leader == "" { // one node
		for id, v := range cpu {
			if strings.HasSuffix(id, companionSuffix) {
				continue
			}
			fence := cpu[id+companionSuffix]
			e.fig(cs, fmt.Sprintf("agent RSS with %d held", held), rss[id], "MB", 100, cmd, "")
			e.fig(cs, fmt.Sprintf("agent idle CPU with %d held", held), v, "% of a core", 0, cmd, "")
			e.fig(cs, "fencing companion idle CPU", fence, "% of a core", 0, cmd, "")
			e.fig(cs, fmt.Sprintf("node idle CPU with %d held (agent + companion)", held), v+fence, "% of a core", 1, cmd,
				"the floor on this machine: "+e.wakeFloor(ctx))
		}
		return
	}
	var others []string
	maxOther := 0.0
	for id := range cpu {
		if id != leader {
			others = append(others, fmt.Sprintf("%s %.1f%% %.0f MB", id, cpu[id], rss[id]))
			maxOther = max(maxOther, cpu[id])
		}
	}
	e.fig(cs, fmt.Sprintf("leader (%s) idle CPU, %d held in the cluster", leader, held), cpu[leader], "% of a core", 0, cmd,
		"lease renewals from every node, placement loop, reconcile; others: "+strings.Join(sortedStrings(others), ", "))
	e.fig(cs, "leader RSS", rss[leader], "MB", 0, cmd, "")
	e.fig(cs, "busiest other node idle CPU", maxOther, "% of a core", 0, cmd, "")
}

// singleOffline prunes everything and times it until the kernel and the status
// hold none of the workload; it returns when the prune started.
func (e *env) singleOffline(ctx context.Context, cs string, c *cluster.Cluster, a *cluster.Agent, kw *kernelWatch, w wl, empty string) (time.Time, error) {
	n := len(w.Addrs)
	cmd := fmt.Sprintf("clusterd apply --prune -f EMPTY (removes %d)", n)
	t0 := time.Now()
	if out, err := c.CLI(ctx, a, "apply", "--prune", "-f", empty); err != nil {
		return t0, fmt.Errorf("%w\n%s", err, out)
	}
	if tk, err := kw.Wait(ctx, convergeLimit, func(v kernelView) bool { return v.Distinct == 0 }); err != nil {
		e.failed(cs, fmt.Sprintf("all %d gone from the kernel", n), "ms", 2000, cmd, err)
	} else {
		e.fig(cs, fmt.Sprintf("all %d gone from the kernel", n), ms(tk.Sub(t0)), "ms", 2000, cmd, "")
	}
	names := nameSet(w.Names)
	ts, st, err := statusWait(ctx, c, a, convergeLimit, 20*time.Millisecond, func(st api.Status) bool {
		return countStatus(st, names, false).Listed == 0
	})
	if err != nil {
		e.failed(cs, fmt.Sprintf("all %d gone from status", n), "ms", 0, cmd, fmt.Errorf("%w; states: %s", err, states(st, names)))
	} else {
		e.fig(cs, fmt.Sprintf("all %d gone from status", n), ms(ts.Sub(t0)), "ms", 0, cmd, "")
	}
	return t0, nil
}

// releases reads the capture of UDP 137 and times the NetBIOS registrations of
// the workload's names after the apply started at tApply (the wire, apart from how
// soon the status shows them) and their releases after the prune at t0.
func (e *env) releases(cs string, capture *lab.Capture, w wl, tApply, t0 time.Time) {
	time.Sleep(200 * time.Millisecond) // let tcpdump write the last frames
	capture.Stop(time.Second)
	cmd := fmt.Sprintf("clusterd apply --prune -f EMPTY (removes %d)", len(w.Addrs))
	frames, err := readPcap(capture.Path)
	if err != nil {
		e.failed(cs, "every name released (last release on the wire)", "ms", 2000, cmd, err)
		return
	}
	want := map[string]bool{}
	for i, a := range w.Addrs {
		want[a.String()+" "+nbName(i)+"<00>"] = true
		want[a.String()+" "+nbName(i)+"<20>"] = true
	}
	reg := countNBNS(frames, want, time.Time{}, nbnsRegistration, nbnsMultihomed)
	rel := countNBNS(frames, want, t0, nbnsRelease)
	regCmd := fmt.Sprintf("clusterd apply -f FILE (%d [[resource]], one raft entry)", len(w.Addrs))
	if len(reg.first) == len(want) {
		e.fig(cs, "every name's registration sent (last first registration on the wire)", ms(reg.last.Sub(tApply)), "ms", 0, regCmd,
			fmt.Sprintf("%d (address, name) pairs, %d packets; the status shows them after the agent's next pass", len(reg.first), reg.packets))
	}
	note := fmt.Sprintf("%d of %d (address, name) pairs released, %d release packets; registrations: %d pairs, %d packets",
		len(rel.first), len(want), rel.packets, len(reg.first), reg.packets)
	if len(rel.first) < len(want) {
		e.rep.add(Figure{Case: cs, Name: "every name released (last release on the wire)", Unit: "ms", Max: 2000, Command: cmd, Note: note,
			Error: fmt.Sprintf("only %d of %d names were released", len(rel.first), len(want))})
		return
	}
	e.fig(cs, "every name released (last release on the wire)", ms(rel.last.Sub(t0)), "ms", 2000, cmd, note)
}
