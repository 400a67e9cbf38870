package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// watch records, every millisecond or so, which live nodes carry the VIP in their
// kernel, and the ARP answers the client gets, and reports any moment with two.
type watch struct {
	c      *cluster.Cluster
	vip    netip.Addr
	prober *cluster.Prober
	stop   context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	dead    map[*lab.Host]bool
	doubles []string
	seen    map[string]bool // every host that held the VIP at some sample
}

// heldElsewhere lists the hosts other than h that held the VIP at some point.
func (w *watch) heldElsewhere(h *lab.Host) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for name := range w.seen {
		if name != h.Name {
			out = append(out, name)
		}
	}
	return out
}

func startWatch(t *testing.T, c *cluster.Cluster, vip netip.Addr) *watch {
	t.Helper()
	p, err := cluster.NewProber(c.Lab.Client(), vip, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{c: c, vip: vip, prober: p, stop: cancel, done: make(chan struct{}), dead: map[*lab.Host]bool{}}
	go p.Run(ctx)
	go func() {
		defer close(w.done)
		for ctx.Err() == nil {
			hs, err := c.Holders(vip)
			if err == nil {
				var live []string
				w.mu.Lock()
				if w.seen == nil {
					w.seen = map[string]bool{}
				}
				for _, h := range hs {
					w.seen[h.Name] = true
					if !w.dead[h] {
						live = append(live, h.Name)
					}
				}
				if len(live) > 1 {
					w.doubles = append(w.doubles, fmt.Sprintf("%s: %v", time.Now().Format("15:04:05.000"), live))
				}
				w.mu.Unlock()
			}
			time.Sleep(time.Millisecond)
		}
	}()
	t.Cleanup(w.finish)
	return w
}

// markDead excludes a host whose link is down: its kernel may keep the address but
// nobody can reach it.
func (w *watch) markDead(h *lab.Host) {
	w.mu.Lock()
	w.dead[h] = true
	w.mu.Unlock()
}

func (w *watch) finish() {
	w.stop()
	<-w.done
}

// check fails the test if two nodes ever held the VIP, in the kernel or on the wire.
func (w *watch) check(t *testing.T) {
	t.Helper()
	w.finish()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.doubles) > 0 {
		t.Errorf("two live holders of %s in the kernel at %d samples, first %s", w.vip, len(w.doubles), w.doubles[0])
	}
	if n := cluster.DoubleRounds(w.prober.Replies()); n > 0 {
		t.Errorf("two MACs answered ARP for %s in %d rounds", w.vip, n)
	}
}

// outage reports the client-observed gap until the new holder answered.
func (w *watch) outage(t *testing.T, since time.Time, h *lab.Host) time.Duration {
	t.Helper()
	time.Sleep(30 * time.Millisecond)
	d, ok := cluster.Outage(w.prober.Replies(), since, h.MAC.String())
	if !ok {
		t.Fatalf("the client saw no ARP answer from the new holder %s", h.Name)
	}
	return d
}

// safetyCluster is three nodes with one VIP on a node that is neither n1 nor the
// leader when possible; it returns the holder's agent.
func safetyCluster(t *testing.T, profile string) (*cluster.Cluster, *cluster.Agent, netip.Addr) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir() // before the lab: cleanups run last-in first-out, so agents stop before it goes
	l := lab.New(t, lab.Options{Nodes: 3, Client: true})
	c := cluster.New(l, bin, dir)
	opts := cluster.Options{Profile: profile, Extra: "address_lifetime = \"4s\"\n"}
	if err := c.Bootstrap(ctx, 3, opts); err != nil {
		t.Fatal(err)
	}
	n1 := c.Agent(1, opts)
	if _, err := c.CLI(ctx, n1, "resource", "add", "vip", "--address", "198.18.1.10/16", "--interface", "eth0", "--preferred-owner", "n2"); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.18.1.10")
	h, err := c.WaitHolder(vip, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if a := c.Agent(i, opts); a.Host == h {
			return c, a, vip
		}
	}
	t.Fatalf("holder %s is no agent's", h.Name)
	return nil, nil, vip
}

func survivor(c *cluster.Cluster, not *cluster.Agent) *cluster.Agent {
	for i := 1; i <= 3; i++ {
		if a := c.Agent(i, cluster.Options{}); a != not {
			return a
		}
	}
	return nil
}

func TestSafetyKillAgentCompanionAlive(t *testing.T) {
	for run := 1; run <= 2; run++ {
		t.Run(strconv.Itoa(run), func(t *testing.T) {
			c, holder, vip := safetyCluster(t, "")
			w := startWatch(t, c, vip)
			start := time.Now()
			if err := c.Kill(holder); err != nil {
				t.Fatal(err)
			}
			h, err := c.WaitHolder(vip, 10*time.Second, holder.Host)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("kill -9 of the holder's agent: %s answers from %s after %s", vip, h.Name, w.outage(t, start, h))
			w.check(t)
		})
	}
}

// killAll SIGKILLs every process in the holder's namespace (agent and companion).
func killAll(t *testing.T, a *cluster.Agent) {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", a.Host.Name).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(out)) {
		pid, _ := strconv.Atoi(f)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if p := a.Proc(); p != nil {
		<-p.Done()
	}
}

func TestSafetyKillAgentAndCompanion(t *testing.T) {
	c, holder, vip := safetyCluster(t, "")
	w := startWatch(t, c, vip)
	start := time.Now()
	killAll(t, holder)
	// The old host keeps the address (nothing of clusterd runs there) until its
	// lifetime (4 s here) runs out; the new holder probes, finds it answering, and
	// waits instead of adding it.
	h, err := c.WaitHolder(vip, 15*time.Second, holder.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kill -9 of agent and companion: %s answers from %s after %s (the old host's address lifetime is 4 s)", vip, h.Name, w.outage(t, start, h))
	w.check(t)
	if ok, _ := cluster.HasAddr(holder.Host, vip); ok {
		t.Errorf("the old host still carries %s", vip)
	}
}

func TestSafetySigstopAgent(t *testing.T) {
	c, holder, vip := safetyCluster(t, "")
	w := startWatch(t, c, vip)
	start := time.Now()
	if err := c.Signal(holder, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	h, err := c.WaitHolder(vip, 10*time.Second, holder.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGSTOP of the holder's agent: %s answers from %s after %s", vip, h.Name, w.outage(t, start, h))
	time.Sleep(5*time.Second - time.Since(start))
	if err := c.Signal(holder, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// The thawed agent must not take the address back.
	time.Sleep(time.Second)
	w.check(t)
	if hs, _ := c.Holders(vip); len(hs) != 1 || hs[0] != h {
		t.Fatalf("after SIGCONT: holders %v, want only %s", hs, h.Name)
	}
}

func TestSafetyHolderPartitioned(t *testing.T) {
	ctx := context.Background()
	c, holder, vip := safetyCluster(t, "")
	w := startWatch(t, c, vip)
	var others []*lab.Host
	for _, h := range c.Lab.Nodes() {
		if h != holder.Host {
			others = append(others, h)
		}
	}
	start := time.Now()
	if err := holder.Host.Partition(others...); err != nil {
		t.Fatal(err)
	}
	h, err := c.WaitHolder(vip, 10*time.Second, nil)
	for err == nil && h == holder.Host {
		h, err = c.WaitHolder(vip, 10*time.Second, nil)
		time.Sleep(5 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("holder cut off from every voter: %s answers from %s after %s", vip, h.Name, w.outage(t, start, h))
	time.Sleep(500 * time.Millisecond)
	if err := holder.Host.Heal(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitStatus(ctx, survivor(c, holder), 10*time.Second, func(st api.Status) bool {
		for _, n := range st.Nodes {
			if n.ID == holder.ID && n.State != "up" {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	w.check(t)
}

func TestSafetyLeaderPartitionedWhileHolding(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() // before the lab: cleanups run last-in first-out, so agents stop before it goes
	l := lab.New(t, lab.Options{Nodes: 3, Client: true})
	c := cluster.New(l, bin, dir)
	opts := cluster.Options{Extra: "address_lifetime = \"4s\"\n"}
	if err := c.Bootstrap(ctx, 3, opts); err != nil {
		t.Fatal(err)
	}
	n1 := c.Agent(1, opts) // the bootstrap node leads
	if _, err := c.CLI(ctx, n1, "resource", "add", "vip", "--address", "198.18.1.10/16", "--interface", "eth0", "--preferred-owner", "n1"); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.18.1.10")
	if h, err := c.WaitHolder(vip, 10*time.Second, nil); err != nil || h != n1.Host {
		t.Fatalf("holder %v (%v), want n1", h, err)
	}
	w := startWatch(t, c, vip)
	start := time.Now()
	if err := n1.Host.Partition(l.Node(2), l.Node(3)); err != nil {
		t.Fatal(err)
	}
	var h *lab.Host
	for {
		var err error
		if h, err = c.WaitHolder(vip, 10*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		if h != n1.Host {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("raft leader (holding %s) cut off: the address answers from %s after %s", vip, h.Name, w.outage(t, start, h))
	n1.Host.Heal()
	time.Sleep(time.Second)
	w.check(t)
}

func TestSafetyLossNoFailover(t *testing.T) {
	ctx := context.Background()
	c, holder, vip := safetyCluster(t, "")
	w := startWatch(t, c, vip)
	for _, h := range c.Lab.Nodes() {
		if err := h.Loss(20); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(15 * time.Second)
	c.Lab.ClearFaults()
	st, err := c.WaitStatus(ctx, holder, 5*time.Second, func(st api.Status) bool { return cluster.Owners(st)["vip"] != "" })
	if err != nil {
		t.Fatal(err)
	}
	if o := cluster.Owners(st)["vip"]; o != holder.ID {
		t.Errorf("20%% loss on every link for 15 s moved the address from %s to %q", holder.ID, o)
	}
	w.check(t)
	if others := w.heldElsewhere(holder.Host); len(others) > 0 {
		t.Errorf("under 20%% loss the address appeared on %v (a failover)", others)
	}
}

// TestSafetySplitWithHoldersOnBothSides cuts n1 (holding vip1) off from n2 and n3
// (n2 holds vip2): the minority side drops its address, the majority keeps its own
// and takes vip1 over; nothing moves back after the heal.
func TestSafetySplitWithHoldersOnBothSides(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() // before the lab: cleanups run last-in first-out, so agents stop before it goes
	l := lab.New(t, lab.Options{Nodes: 3, Client: true})
	c := cluster.New(l, bin, dir)
	opts := cluster.Options{Extra: "address_lifetime = \"4s\"\n"}
	if err := c.Bootstrap(ctx, 3, opts); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Agent(1, opts), c.Agent(2, opts)
	for _, r := range [][]string{{"vip1", "198.18.1.11/16", "n1"}, {"vip2", "198.18.1.12/16", "n2"}} {
		if _, err := c.CLI(ctx, n1, "resource", "add", r[0], "--address", r[1], "--interface", "eth0", "--preferred-owner", r[2]); err != nil {
			t.Fatal(err)
		}
	}
	vip1, vip2 := netip.MustParseAddr("198.18.1.11"), netip.MustParseAddr("198.18.1.12")
	for vip, want := range map[netip.Addr]*lab.Host{vip1: n1.Host, vip2: n2.Host} {
		if h, err := c.WaitHolder(vip, 10*time.Second, nil); err != nil || h != want {
			t.Fatalf("%s on %v (%v), want %s", vip, h, err, want.Name)
		}
	}
	w1, w2 := startWatch(t, c, vip1), startWatch(t, c, vip2)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := n1.Host.Partition(l.Node(2), l.Node(3)); err != nil {
		t.Fatal(err)
	}
	var h *lab.Host
	for {
		var err error
		if h, err = c.WaitHolder(vip1, 10*time.Second, nil); err != nil {
			t.Fatal(err)
		}
		if h != n1.Host {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("split: vip1 moved from the minority side to %s after %s", h.Name, w1.outage(t, start, h))
	if err := n1.Host.Heal(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	w1.check(t)
	w2.check(t)
	if hs, _ := c.Holders(vip2); len(hs) != 1 || hs[0] != n2.Host {
		t.Errorf("vip2 (majority side) holders %v, want only n2", hs)
	}
	if hs, _ := c.Holders(vip1); len(hs) != 1 || hs[0] != h {
		t.Errorf("vip1 holders after the heal %v, want only %s", hs, h.Name)
	}
}

// TestSafetyLeaderRestartDuringMove kills and restarts the raft leader (which runs
// the move) while a graceful move is under way.
func TestSafetyLeaderRestartDuringMove(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir() // before the lab: cleanups run last-in first-out, so agents stop before it goes
	l := lab.New(t, lab.Options{Nodes: 3, Client: true})
	c := cluster.New(l, bin, dir)
	opts := cluster.Options{Extra: "address_lifetime = \"4s\"\n"}
	if err := c.Bootstrap(ctx, 3, opts); err != nil {
		t.Fatal(err)
	}
	n1, n2 := c.Agent(1, opts), c.Agent(2, opts)
	if _, err := c.CLI(ctx, n1, "resource", "add", "vip", "--address", "198.18.1.10/16", "--interface", "eth0", "--preferred-owner", "n2"); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.18.1.10")
	if h, err := c.WaitHolder(vip, 10*time.Second, nil); err != nil || h != n2.Host {
		t.Fatalf("vip on %v (%v), want n2", h, err)
	}
	w := startWatch(t, c, vip)
	go c.CLI(ctx, n2, "move", "vip", "--to", "n3")
	time.Sleep(2 * time.Millisecond)
	if err := c.Kill(n1); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(ctx, n1); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitStatus(ctx, n2, 15*time.Second, func(st api.Status) bool { return cluster.Owners(st)["vip"] != "" })
	if err != nil {
		t.Fatalf("vip not online after the leader restarted mid-move: %v (%+v)", err, st.Resources)
	}
	h, err := c.WaitHolder(vip, 5*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("leader restarted during a move: vip ended on %s (status owner %s)", h.Name, cluster.Owners(st)["vip"])
	time.Sleep(500 * time.Millisecond)
	w.check(t)
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
