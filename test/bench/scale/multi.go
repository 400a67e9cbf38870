package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/resource/announce"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// statusPeriod is how often the cluster case polls `clusterd status`: a status
// deep-copies the state and encodes every resource, and fetches every node's
// observations, so polling faster would load the agents being measured (at 10,000
// resources one status costs the answering agent about 30 ms).
func statusPeriod(resources int) time.Duration {
	if resources > 2500 {
		return time.Second
	}
	return 200 * time.Millisecond
}

// cluster is cases 2 and 3: e.o.nodes nodes, e.o.perNode addresses each.
func (e *env) cluster(ctx context.Context, dir string) error {
	const cs = "cluster"
	n := e.o.nodes * e.o.perNode
	l, err := lab.Create(ctx, lab.Options{Nodes: e.o.nodes, Client: true, Dir: labDir(dir)})
	if err != nil {
		return err
	}
	defer l.Close()
	c := cluster.New(l, e.o.bin, dir)
	t0 := time.Now()
	agents, err := startAgents(ctx, c, e.o.nodes, e.o.realtime, e.o.profile)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.log, "  %d agents up in %v\n", len(agents), time.Since(t0).Round(time.Millisecond))
	w := newWorkload(n, false)
	file, _, err := w.write(dir)
	if err != nil {
		return err
	}
	kw, err := watchKernel(ctx, l.Nodes(), w.Addrs)
	if err != nil {
		return err
	}
	if e.o.leaseCapture {
		lc, err := l.Capture("udp", "port", fmt.Sprint(cluster.RaftPort+1), "-B", captureBuffer)
		if err != nil {
			return err
		}
		defer lc.Stop(time.Second)
		fmt.Fprintf(e.log, "  lease capture: %s\n", lc.Path)
	}
	tApply := time.Now()
	stop := e.perfRecord(dir, "apply", agents...)
	lagStop := watchAgentLag(ctx, c, agents)
	rates := renewalRates(ctx, c, agents)
	st, err := e.clusterOnline(ctx, cs, c, agents[0], kw, w, file)
	lags := lagStop()
	e.fig(cs, "lease renewals sent per node while coming online", maxRate(rates()), "per s", 0, "GET /metrics clusterd_lease_renewals_sent_total before and after",
		fmt.Sprintf("steady state is %d voters × 40 rounds/s = %d/s; %s", e.o.nodes, 40*e.o.nodes, rateNote(rates())))
	e.fig(cs, "worst agent timer lag while coming online", ms(maxLag(lags)), "ms", e.lagLimit(), "GET /readyz of every agent every 500 ms during the apply (worst lag since the last read)", lagNote(lags))
	stop()
	if err != nil {
		return err
	}
	e.renewalErrors(cs, agents, "after apply")
	e.reachable(ctx, cs, l, w, nil, "from their holders")
	byID := map[string]*cluster.Agent{}
	for _, a := range agents {
		byID[a.ID] = a
	}
	if s, err := c.Client(agents[0]).Status(ctx); err == nil && s.Leader != "" {
		st.Leader = s.Leader
	}
	e.idle(ctx, cs, dir, byID, n, st.Leader)
	e.leaseHealth(cs, "while converging and idle", labDir(dir), tApply, "")
	victim, err := e.steady(ctx, kw, n, c, agents[0])
	if err != nil {
		e.failed(cs, "failover", "ms", 3000, "kill -9 + link down of a node", err)
	} else if err := e.failover(ctx, cs, dir, c, byID, victim, kw, w); err != nil {
		return err
	}
	e.renewalErrors(cs, agents, "after the failover")
	leader := st.Leader
	if s, err := c.Client(agents[0]).Status(ctx); err == nil && s.Leader != "" {
		leader = s.Leader
	}
	if victim == "" || victim == leader {
		victim = otherThan(byID, leader)
	}
	return e.snapshot(ctx, cs, c, byID[victim], byID[leader])
}

// steady waits until every address is held again (a loaded machine can make nodes
// miss renewals and lose leases) and picks the failover's victim: the non-leader
// holding the most.
func (e *env) steady(ctx context.Context, kw *kernelWatch, n int, c *cluster.Cluster, a *cluster.Agent) (string, error) {
	if _, err := kw.Wait(ctx, convergeLimit, func(v kernelView) bool { return v.Distinct == n }); err != nil {
		return "", fmt.Errorf("the cluster does not hold all %d addresses before the fault: %w", n, err)
	}
	st, err := c.Client(a).Status(ctx)
	if err != nil {
		return "", err
	}
	victim := pickVictim(kw.View(), st.Leader)
	if victim == "" {
		return "", fmt.Errorf("no node other than the leader %s holds addresses: %v", st.Leader, kw.View().PerNode)
	}
	return victim, nil
}

// clusterOnline applies the workload and times it until every address is in some
// node's kernel and online in the status.
func (e *env) clusterOnline(ctx context.Context, cs string, c *cluster.Cluster, a *cluster.Agent, kw *kernelWatch, w wl, file string) (api.Status, error) {
	n := len(w.Addrs)
	cmd := fmt.Sprintf("clusterd apply -f FILE (%d [[resource]] over %d nodes)", n, e.o.nodes)
	t0 := time.Now()
	if out, err := c.CLI(ctx, a, "apply", "-f", file); err != nil {
		return api.Status{}, fmt.Errorf("%w\n%s", err, out)
	}
	e.fig(cs, "apply command returns", ms(time.Since(t0)), "ms", 0, cmd, "committed, before any address is added")
	if tk, err := kw.Wait(ctx, convergeLimit, func(v kernelView) bool { return v.Distinct == n }); err != nil {
		e.failed(cs, fmt.Sprintf("all %d in a kernel", n), "ms", 0, cmd, err)
	} else {
		e.fig(cs, fmt.Sprintf("all %d in a kernel", n), ms(tk.Sub(t0)), "ms", 0, cmd, "per node: "+perNode(kw.View()))
	}
	names := nameSet(w.Names)
	period := statusPeriod(n)
	ts, st, err := statusWait(ctx, c, a, convergeLimit, period, func(st api.Status) bool {
		return countStatus(st, names, false).Online == n
	})
	if err != nil {
		e.failed(cs, fmt.Sprintf("all %d online in status", n), "ms", 0, cmd, fmt.Errorf("%w; states: %s", err, states(st, names)))
		return st, nil
	}
	e.fig(cs, fmt.Sprintf("all %d online in status", n), ms(ts.Sub(t0)), "ms", 0, cmd,
		fmt.Sprintf("GET /v1/status polled every %v", period))
	return st, nil
}

// pickVictim returns the non-leader node holding the most addresses.
func pickVictim(v kernelView, leader string) string {
	best, most := "", 0
	for _, id := range sortedKeys(v.PerNode) {
		if id != leader && v.PerNode[id] > most {
			best, most = id, v.PerNode[id]
		}
	}
	return best
}

func perNode(v kernelView) string {
	var parts []string
	for _, id := range sortedKeys(v.PerNode) {
		parts = append(parts, fmt.Sprintf("%s %d", id, v.PerNode[id]))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// captureBuffer is tcpdump's kernel buffer in KiB (-B): with the default 2 MB a
// mass failover's burst of GARPs overflows it and the counts come out low.
const captureBuffer = "65536"

// failover kills the victim's agent (kill -9) and takes its link down, then sweeps
// its addresses from the client until each answers from a survivor; a capture on the
// bridge counts the announcements per interface.
func (e *env) failover(ctx context.Context, cs, dir string, c *cluster.Cluster, agents map[string]*cluster.Agent, victim string, kw *kernelWatch, w wl) error {
	va := agents[victim]
	lost := kw.HeldBy(victim)
	// Options after the filter reach tcpdump too: glibc's getopt permutes argv.
	capture, err := c.Lab.Capture("arp", "-B", captureBuffer)
	if err != nil {
		return err
	}
	cmd := fmt.Sprintf("kill -9 of %s's agent + its link down (%d addresses)", victim, len(lost))
	stop := e.perfRecord(dir, "failover", survivors(agents, victim)...)
	lagStop := watchAgentLag(ctx, c, survivors(agents, victim))
	t0 := time.Now()
	if err := c.Kill(va); err != nil {
		return err
	}
	if err := va.Host.LinkDown(); err != nil {
		return err
	}
	fmt.Fprintf(e.log, "  fault at %s\n", t0.UTC().Format("15:04:05.000"))
	dead := va.Host.MAC.String()
	sctx, cancel := context.WithTimeout(ctx, convergeLimit)
	ans, err := cluster.ARPSweep{}.Sweep(sctx, c.Lab.Client(), lost, func(mac string) bool { return mac != dead })
	cancel()
	stop()
	lags := lagStop()
	e.fig(cs, "worst survivor timer lag during the failover", ms(maxLag(lags)), "ms", e.lagLimit(), "GET /readyz of every survivor every 500 ms until the ARP sweep ended (worst since the last read)", lagNote(lags))
	name := fmt.Sprintf("failover: all %d answer ARP from a survivor", len(lost))
	if err != nil {
		e.failed(cs, name, "ms", 3000, cmd, fmt.Errorf("%w (%d answered, by %v)", err, len(ans), macsToNodes(c, cluster.ByMAC(ans))))
	} else {
		first := time.Time{}
		for _, a := range ans {
			if first.IsZero() || a.At.Before(first) {
				first = a.At
			}
		}
		e.fig(cs, name, ms(cluster.Latest(ans).Sub(t0)), "ms", 3000, cmd,
			fmt.Sprintf("first answered after %.0f ms; first answers by %v; ARP sweep resolution %v", ms(first.Sub(t0)), macsToNodes(c, cluster.ByMAC(ans)), cluster.DefaultSweepRetry))
	}
	e.failoverStatus(ctx, cs, c, agents, victim, lost, w, cmd, t0)
	time.Sleep(3 * time.Second) // the announcements' repeats (3 rounds 1.1 s apart)
	e.announceRate(cs, c, capture, cmd, t0, lost)
	e.leaseHealth(cs, "during the failover", labDir(dir), t0, victim)
	// The victim's host comes back: link up, agent restarted (time to ready = restore
	// from raft's log, no snapshot yet).
	if err := va.Host.LinkUp(); err != nil {
		return err
	}
	return e.restart(ctx, cs, c, va, "restart of the failed node, to ready (log replay, no snapshot)")
}

// failoverStatus times the failover until a survivor's status shows every lost
// resource online again.
func (e *env) failoverStatus(ctx context.Context, cs string, c *cluster.Cluster, agents map[string]*cluster.Agent, victim string, lost []netip.Addr, w wl, cmd string, t0 time.Time) {
	names := map[string]bool{}
	for i, a := range w.Addrs {
		if containsAddr(lost, a) {
			names[w.Names[i]] = true
		}
	}
	survivor := agents[otherThan(agents, victim)]
	name := fmt.Sprintf("failover: all %d online in status", len(lost))
	period := statusPeriod(len(w.Addrs))
	ts, st, err := statusWait(ctx, c, survivor, convergeLimit, period, func(st api.Status) bool {
		return countStatus(st, names, false).Online == len(names)
	})
	if err != nil {
		e.failed(cs, name, "ms", 0, cmd, fmt.Errorf("%w; states: %s", err, states(st, names)))
		return
	}
	e.fig(cs, name, ms(ts.Sub(t0)), "ms", 0, cmd, fmt.Sprintf("status from %s every %v", survivor.ID, period))
}

func survivors(agents map[string]*cluster.Agent, victim string) []*cluster.Agent {
	var out []*cluster.Agent
	for _, id := range sortedKeys(agents) {
		if id != victim {
			out = append(out, agents[id])
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}

func otherThan(agents map[string]*cluster.Agent, id string) string {
	for _, k := range sortedKeys(agents) {
		if k != id {
			return k
		}
	}
	return ""
}

// macsToNodes renames MAC counts by node.
func macsToNodes(c *cluster.Cluster, by map[string]int) map[string]int {
	out := map[string]int{}
	for mac, n := range by {
		out[c.NodeOf(mac)] += n
	}
	return out
}

// announceRate reads the capture and compares each interface's busiest 100 ms with
// the announcer's bucket: Burst + Rate × 100 ms.
func (e *env) announceRate(cs string, c *cluster.Cluster, capture *lab.Capture, cmd string, t0 time.Time, lost []netip.Addr) {
	capture.Stop(time.Second)
	frames, err := readPcap(capture.Path)
	limit := float64(announce.DefaultBurst) + announce.DefaultRate*0.1
	name := "announcements: most GARP frames from one interface in 100 ms"
	if err != nil {
		e.failed(cs, name, "frames", limit, cmd, err)
		return
	}
	var gs []garp
	for _, f := range frames {
		if g, ok := parseGARP(f); ok && !g.At.Before(t0) {
			gs = append(gs, g)
		}
	}
	if len(gs) == 0 {
		e.failed(cs, name, "frames", limit, cmd, errNoFrames)
		return
	}
	st := garpRate(gs, 100*time.Millisecond)
	e.fig(cs, name, float64(st.MaxWindow), "frames", limit, cmd,
		fmt.Sprintf("by %s; limit = burst %d + %d frames/s × 100 ms (resource/announce defaults); %d GARP frames from %d interfaces over %.0f ms",
			c.NodeOf(st.MaxMAC), announce.DefaultBurst, announce.DefaultRate, st.Frames, st.Senders, ms(st.Last.Sub(st.First))))
	var first, last time.Time
	n := 0
	for _, g := range gs {
		if containsAddr(lost, g.IP) {
			n++
			if first.IsZero() || g.At.Before(first) {
				first = g.At
			}
			last = maxTime(last, g.At)
		}
	}
	if n == 0 {
		e.failed(cs, "announcements: first GARP for a failed-over address", "ms", 0, cmd, errNoFrames)
		return
	}
	e.fig(cs, "announcements: first GARP for a failed-over address", ms(first.Sub(t0)), "ms", 0, cmd,
		fmt.Sprintf("%d GARP frames for the %d failed-over addresses, the last %.0f ms after the fault", n, len(lost), ms(last.Sub(t0))))
}

// restart kills nothing: it starts a stopped agent again and times it to ready.
func (e *env) restart(ctx context.Context, cs string, c *cluster.Cluster, a *cluster.Agent, name string) error {
	cmd := fmt.Sprintf("clusterd agent --config %s.toml (restart with its data dir)", a.ID)
	t0 := time.Now()
	if err := c.Restart(ctx, a); err != nil {
		e.failed(cs, name, "ms", 0, cmd, err)
		return nil
	}
	e.fig(cs, name, ms(time.Since(t0)), "ms", 0, cmd, "until /readyz answers 200 (polled every 20 ms)")
	return nil
}

// renewalErrors counts lease renewals the agents could not send (the claim set did
// not fit one datagram), from their logs.
func (e *env) renewalErrors(cs string, agents []*cluster.Agent, when string) {
	var parts []string
	total := 0
	for _, a := range agents {
		p := a.Proc()
		if p == nil {
			continue
		}
		b, err := os.ReadFile(p.LogPath())
		if err != nil {
			continue
		}
		k := strings.Count(string(b), "lease renewal not sent")
		total += k
		if k > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", a.ID, k))
		}
	}
	note := "agent logs: \"lease renewal not sent\" (claim set larger than one datagram)"
	if len(parts) > 0 {
		note += "; " + strings.Join(parts, ", ")
	}
	e.fig(cs, "lease renewals not sent "+when, float64(total), "renewals", 0, "grep of the agents' logs", note)
}

// snapshotWrites is how many raft entries the benchmark commits so that raft's
// snapshot threshold (1,024 entries, consensus.Config.SnapshotThreshold) is passed.
const snapshotWrites = 1100

// snapshot commits enough small entries for raft to snapshot, waits for the
// victim's snapshot, reports its size, then restarts the victim from it.
func (e *env) snapshot(ctx context.Context, cs string, c *cluster.Cluster, victim, leader *cluster.Agent) error {
	if e.o.snapshotWait == 0 {
		fmt.Fprintln(e.log, "  snapshot skipped (--snapshot-wait 0)")
		return nil
	}
	cl := c.Client(leader)
	t0 := time.Now()
	retries := 0
	for i := 0; i < snapshotWrites; i++ {
		_, err := cl.SetDraining(ctx, victim.ID, false)
		if err != nil && retries < 20 { // a leader change: the write is idempotent, try again
			retries++
			time.Sleep(200 * time.Millisecond)
			i--
			continue
		}
		if err != nil {
			e.failed(cs, "raft snapshot size", "KB", 0, "POST undrain × 1100", fmt.Errorf("write %d of %d (undrain %s, to pass the snapshot threshold): %w", i+1, snapshotWrites, victim.ID, err))
			return nil
		}
	}
	e.fig(cs, fmt.Sprintf("%d small raft writes (undrain), sequential", snapshotWrites), ms(time.Since(t0)), "ms", 0,
		fmt.Sprintf("POST /v1/nodes/%s/undrain × %d", victim.ID, snapshotWrites), fmt.Sprintf("to pass raft's snapshot threshold of 1,024 entries; %d retried after an error (leader change)", retries))
	cmd := "raft's snapshot timer (every 120-240 s once 1,024 entries are past the last snapshot)"
	deadline := time.Now().Add(e.o.snapshotWait)
	var path string
	for path == "" {
		path = latestSnapshot(victim.DataDir)
		if path != "" {
			break
		}
		if time.Now().After(deadline) {
			e.failed(cs, "raft snapshot size", "KB", 0, cmd, fmt.Errorf("no snapshot in %s after %v", victim.DataDir, e.o.snapshotWait))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	time.Sleep(time.Second) // let raft finish writing it
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	db, _ := os.Stat(filepath.Join(victim.DataDir, "raft.db"))
	note := fmt.Sprintf("%s, %.0f s after the writes", strings.TrimPrefix(path, victim.DataDir+"/"), time.Since(t0).Seconds())
	if db != nil {
		note += fmt.Sprintf("; raft.db %.0f KB", float64(db.Size())/1024)
	}
	e.fig(cs, "raft snapshot size (state.bin)", float64(fi.Size())/1024, "KB", 0, cmd, note)
	if err := c.Kill(victim); err != nil {
		return err
	}
	return e.restart(ctx, cs, c, victim, "restart from the snapshot, to ready (restore)")
}

// latestSnapshot returns the newest complete DATA_DIR/snapshots/*/state.bin (""
// for none); raft writes a snapshot into NAME.tmp and renames it when done.
func latestSnapshot(dataDir string) string {
	paths, _ := filepath.Glob(filepath.Join(dataDir, "snapshots", "*", "state.bin"))
	best, newest := "", time.Time{}
	for _, p := range paths {
		if strings.HasSuffix(filepath.Dir(p), ".tmp") {
			continue
		}
		if fi, err := os.Stat(p); err == nil && fi.ModTime().After(newest) {
			best, newest = p, fi.ModTime()
		}
	}
	return best
}
