package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// three starts a 3-node cluster (n1 bootstraps, n2 and n3 join) with a client.
func three(t *testing.T) *cluster.Cluster { return threeWith(t, cluster.Options{}) }

// threeWith is three with agent options opts.
func threeWith(t *testing.T, opts cluster.Options) *cluster.Cluster {
	t.Helper()
	dir := t.TempDir() // before the lab: cleanups run last-in first-out, so agents stop before it goes
	l := lab.New(t, lab.Options{Nodes: 3, Client: true})
	c := cluster.New(l, bin, dir)
	if err := c.Bootstrap(context.Background(), 3, opts); err != nil {
		t.Fatal(err)
	}
	return c
}

// clientGet fetches http://addr:8080/ from the client namespace (a service a hook
// started), retrying for up to 5 s.
func clientGet(ctx context.Context, c *cluster.Cluster, addr string) error {
	var err error
	for range 50 {
		_, err = c.Lab.Client().Run(ctx, "python3", "-c", "import urllib.request;urllib.request.urlopen('http://"+addr+":8080/',timeout=1)")
		if err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// addSix adds r1..r6 (198.18.1.11-16/16) and waits until all are online.
func addSix(t *testing.T, c *cluster.Cluster, via *cluster.Agent) api.Status {
	t.Helper()
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		if _, err := c.CLI(ctx, via, "resource", "add", fmt.Sprintf("r%d", i), "--address", fmt.Sprintf("198.18.1.%d/16", 10+i), "--interface", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.WaitStatus(ctx, via, 10*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 6 })
	if err != nil {
		t.Fatalf("six resources online: %v (%+v)", err, st.Resources)
	}
	return st
}

func load(owners map[string]string) map[string]int {
	out := map[string]int{}
	for _, n := range owners {
		out[n]++
	}
	return out
}

func vipOf(name string) netip.Addr {
	var i int
	fmt.Sscanf(name, "r%d", &i)
	return netip.MustParseAddr(fmt.Sprintf("198.18.1.%d", 10+i))
}

// checkKernel verifies every online resource is on exactly its owner's interface.
func checkKernel(t *testing.T, c *cluster.Cluster, owners map[string]string, dead *lab.Host) {
	t.Helper()
	for name, owner := range owners {
		h, err := c.WaitHolder(vipOf(name), 5*time.Second, dead)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := c.Agent(nodeIndex(owner), cluster.Options{}).Host; h != want {
			t.Fatalf("%s is on %s, status says %s", name, h.Name, owner)
		}
	}
}

func nodeIndex(id string) int {
	var i int
	fmt.Sscanf(id, "n%d", &i)
	return i
}

func TestThreeNodesSpreadMoveDrain(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	st := addSix(t, c, n1)
	owners := cluster.Owners(st)
	if got := load(owners); got["n1"] != 2 || got["n2"] != 2 || got["n3"] != 2 {
		t.Fatalf("six addresses over three nodes: got %v, want 2/2/2", got)
	}
	checkKernel(t, c, owners, nil)

	// move with --wait, through a follower's API (forwarded to the leader).
	n3 := c.Agent(3, cluster.Options{})
	from := owners["r1"]
	to := "n2"
	if from == "n2" {
		to = "n3"
	}
	out, err := c.CLI(ctx, n3, "move", "r1", "--to", to, "--wait")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "r1 on "+to+": online") {
		t.Fatalf("move --wait output does not end online on %s:\n%s", to, out)
	}
	owners["r1"] = to
	checkKernel(t, c, owners, nil)

	// drain n1: it ends up empty; every resource online elsewhere.
	if out, err = c.CLI(ctx, n3, "drain", "n1", "--wait"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	st, err = c.WaitStatus(ctx, n1, 5*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 6 })
	if err != nil {
		t.Fatal(err)
	}
	owners = cluster.Owners(st)
	if l := load(owners); l["n1"] != 0 {
		t.Fatalf("after drain n1 still holds %d", l["n1"])
	}
	checkKernel(t, c, owners, nil)

	// undrain: with failback "never", nothing moves back.
	if _, err := c.CLI(ctx, n3, "undrain", "n1"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // a placement period and then some
	st, err = c.Client(n1).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := cluster.Owners(st); !maps.Equal(got, owners) {
		t.Fatalf("undrain moved resources: before %v, after %v", owners, got)
	}
	// rebalance --dry-run proposes moves back to n1 and changes nothing.
	out, err = c.CLI(ctx, n3, "rebalance", "--dry-run")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "-> n1") {
		t.Fatalf("rebalance --dry-run after undrain: %q, want moves to n1", out)
	}
}

func TestHostDeathFailsOver(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	st := addSix(t, c, n1)
	owners := cluster.Owners(st)
	// Kill a node that is not the leader (leader loss has its own test).
	victim := c.Agent(2, cluster.Options{})
	var victimVIP netip.Addr
	for name, o := range owners {
		if o == victim.ID {
			victimVIP = vipOf(name)
		}
	}
	p, err := cluster.NewProber(c.Lab.Client(), victimVIP, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Run(pctx)
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := c.Kill(victim); err != nil {
		t.Fatal(err)
	}
	if err := victim.Host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	st, err = c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool {
		o := cluster.Owners(st)
		return len(o) == 6 && load(o)["n2"] == 0
	})
	if err != nil {
		t.Fatalf("failover after host death: %v (%+v)", err, st.Resources)
	}
	checkKernel(t, c, cluster.Owners(st), victim.Host)
	h, err := c.WaitHolder(victimVIP, 5*time.Second, victim.Host)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	outage, ok := cluster.Outage(p.Replies(), start, h.MAC.String())
	if !ok {
		t.Fatalf("prober saw no reply from the new holder %s", h.Name)
	}
	t.Logf("host death: %s answers from %s after a client-observed outage of %s", victimVIP, h.Name, outage)
	if err := cluster.Ping(ctx, c.Lab.Client(), victimVIP); err != nil {
		t.Fatal(err)
	}
}

func TestLeaderLossMovesOnlyItsAddresses(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	st := addSix(t, c, n1)
	owners := cluster.Owners(st)
	leader := c.Agent(nodeIndex(st.Leader), cluster.Options{})
	if err := c.Kill(leader); err != nil {
		t.Fatal(err)
	}
	if err := leader.Host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	other := c.Agent(1+nodeIndex(st.Leader)%3, cluster.Options{})
	st, err := c.WaitStatus(ctx, other, 10*time.Second, func(st api.Status) bool {
		o := cluster.Owners(st)
		return st.Leader != "" && st.Leader != leader.ID && len(o) == 6 && load(o)[leader.ID] == 0
	})
	if err != nil {
		t.Fatalf("after leader loss: %v (%+v)", err, st)
	}
	after := cluster.Owners(st)
	for name, o := range owners {
		if o != leader.ID && after[name] != o {
			t.Errorf("%s moved from %s to %s though its holder lived", name, o, after[name])
		}
	}
	checkKernel(t, c, after, leader.Host)
}

func TestRestartAllNodes(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	owners := cluster.Owners(addSix(t, c, n1))
	agents := []*cluster.Agent{n1, c.Agent(2, cluster.Options{}), c.Agent(3, cluster.Options{})}
	for _, a := range agents {
		if err := c.Kill(a); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 3)
	for _, a := range agents {
		go func() { errs <- c.Restart(ctx, a) }()
	}
	for range agents {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	st, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 6 })
	if err != nil {
		t.Fatal(err)
	}
	if got := cluster.Owners(st); !maps.Equal(got, owners) {
		t.Fatalf("assignments after restarting every node: got %v, want %v", got, owners)
	}
	checkKernel(t, c, owners, nil)
}
