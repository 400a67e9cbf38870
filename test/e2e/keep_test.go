package e2e

import (
	"context"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// keepCluster starts three nodes whose addresses live 3 s in the kernel unless
// refreshed, and adds "kept" (on_quorum_loss = keep) and "plain" (the default) on
// holder (a node id).
func keepCluster(t *testing.T, holder string) (*cluster.Cluster, cluster.Options) {
	t.Helper()
	ctx := context.Background()
	opts := cluster.Options{Extra: "address_lifetime = \"3s\"\n"}
	c := threeWith(t, opts)
	n1 := c.Agent(1, opts)
	for _, r := range []struct{ name, addr, policy string }{{"kept", "198.18.1.20/16", "keep"}, {"plain", "198.18.1.21/16", ""}} {
		args := []string{"resource", "add", r.name, "--address", r.addr, "--interface", "eth0", "--preferred-owner", holder}
		if r.policy != "" {
			args = append(args, "--on-quorum-loss", r.policy)
		}
		if out, err := c.CLI(ctx, n1, args...); err != nil {
			t.Fatalf("resource add %s: %v\n%s", r.name, err, out)
		}
	}
	want := c.Agent(nodeIndex(holder), opts).Host
	for _, ip := range []netip.Addr{keptVIP, plainVIP} {
		if h, err := c.WaitHolder(ip, 10*time.Second, nil); err != nil || h != want {
			t.Fatalf("%s on %v (%v), want %s", ip, h, err, holder)
		}
	}
	// A voter that started less than Lease+Margin ago confirms nothing: it answers and
	// denies, which rightly makes a kept address drop. Let the last one settle.
	time.Sleep(300 * time.Millisecond)
	return c, opts
}

var (
	keptVIP  = netip.MustParseAddr("198.18.1.20")
	plainVIP = netip.MustParseAddr("198.18.1.21")
)

// TestQuorumLossKeep: with two of three voters gone, the survivor drops its default
// resource within the lease but keeps the on_quorum_loss = keep one (netlink, client
// ping) past the kernel lifetime (so it is refreshed) and past the companion's lease
// deadline; status, /readyz and event 1177 say so; `clusterd recover` brings both
// back.
func TestQuorumLossKeep(t *testing.T) {
	ctx := context.Background()
	c, opts := keepCluster(t, "n1")
	n1, n2, n3 := c.Agent(1, opts), c.Agent(2, opts), c.Agent(3, opts)

	start := time.Now()
	for _, a := range []*cluster.Agent{n2, n3} {
		if err := c.Kill(a); err != nil {
			t.Fatal(err)
		}
	}
	dropped := time.Duration(0)
	for time.Since(start) < 4500*time.Millisecond { // past the 3 s kernel lifetime
		if has, _ := cluster.HasAddr(n1.Host, keptVIP); !has {
			t.Fatalf("the survivor lost the kept address %s %s after losing quorum", keptVIP, time.Since(start))
		}
		if has, _ := cluster.HasAddr(n1.Host, plainVIP); !has && dropped == 0 {
			dropped = time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if dropped == 0 || dropped > 2*time.Second {
		t.Fatalf("the default resource %s was not dropped within 2 s of losing quorum (dropped after %s; 0 = never)", plainVIP, dropped)
	}
	t.Logf("quorum lost: default resource dropped after %s; the keep resource still held after %s", dropped, time.Since(start).Round(time.Millisecond))
	if err := cluster.Ping(ctx, c.Lab.Client(), keptVIP); err != nil {
		t.Fatalf("client cannot reach the kept address: %v", err)
	}

	st, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool {
		for _, r := range st.Resources {
			if r.Name == "kept" {
				return strings.Contains(r.Reason, "kept without a lease")
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("status does not say the resource is kept without a lease: %v (%+v)", err, st.Resources)
	}
	resp, err := c.HTTP(n1.Host, 2*time.Second).Get(n1.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(body, "keeping 1 addresses without a lease") {
		t.Errorf("readyz while keeping: %d\n%s", resp.StatusCode, body)
	}
	log := readLog(t, n1)
	if !strings.Contains(log, "event=1177") || !strings.Contains(log, "keeping 1 addresses without a lease (kept)") {
		t.Errorf("no event 1177 naming the kept resource in n1's log")
	}

	// Disaster recovery on the survivor: the agent stops (releasing everything,
	// kept or not), recover, start: both come back.
	if err := c.Signal(n1, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if has, _ := cluster.HasAddr(n1.Host, keptVIP); has {
		t.Errorf("the kept address survived the agent's stop")
	}
	if out, err := c.Lab.Node(1).Run(ctx, bin, "recover", "--config", n1.Config); err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	if err := c.Restart(ctx, n1); err != nil {
		t.Fatal(err)
	}
	for _, ip := range []netip.Addr{keptVIP, plainVIP} {
		if h, err := c.WaitHolder(ip, 15*time.Second, nil); err != nil || h != n1.Host {
			t.Fatalf("after recover %s on %v (%v), want n1", ip, h, err)
		}
	}
}

// TestQuorumLossKeepMovedDrops: voters that answer and deny win over keep.
//
// A stalled holder (SIGSTOP) whose resource the majority moves keeps the address in
// its kernel (the companion spares it at the lease deadline), so the new holder's
// ARP probe finds it and waits; when it thaws, the voters deny its claim and it drops
// the address: never two holders. Then the documented risk: the new holder cut off
// from the majority keeps the address while the majority moves it on (two holders,
// by design), and drops it as soon as the partition heals.
func TestQuorumLossKeepMovedDrops(t *testing.T) {
	c, opts := keepCluster(t, "n2")
	n2 := c.Agent(2, opts)
	w := startWatch(t, c, keptVIP)
	if err := c.Signal(n2, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // well past the lease; within the keep list's 5 s
	if has, _ := cluster.HasAddr(n2.Host, keptVIP); !has {
		t.Errorf("the companion removed the kept address of a stalled agent before its keep list expired")
	}
	if err := c.Signal(n2, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	h, err := c.WaitHolder(keptVIP, 10*time.Second, n2.Host)
	for err == nil && h == n2.Host {
		h, err = c.WaitHolder(keptVIP, 10*time.Second, n2.Host)
	}
	if err != nil {
		t.Fatalf("the kept address did not move off the thawed node: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	w.check(t)
	if has, _ := cluster.HasAddr(n2.Host, keptVIP); has {
		t.Fatalf("the thawed node still holds %s next to %s", keptVIP, h.Name)
	}
	t.Logf("stalled keep holder: %s moved to %s with no second holder", keptVIP, h.Name)

	// The new holder is cut off from the other two: it keeps the address; the
	// majority moves it on. On heal the cut-off node drops it at once.
	var holder *cluster.Agent
	var others []*lab.Host
	for i := 1; i <= 3; i++ {
		if a := c.Agent(i, opts); a.Host == h {
			holder = a
		} else {
			others = append(others, a.Host)
		}
	}
	if err := holder.Host.Partition(others...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, _ := c.Holders(keptVIP)
		if len(hs) == 2 {
			break // the documented risk of keep
		}
		if has, _ := cluster.HasAddr(holder.Host, keptVIP); !has {
			t.Fatalf("the cut-off holder %s dropped its kept address", holder.ID)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the majority did not fail %s over within 10 s (holders %v)", keptVIP, hs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	healed := time.Now()
	if err := holder.Host.Heal(); err != nil {
		t.Fatal(err)
	}
	for {
		if has, _ := cluster.HasAddr(holder.Host, keptVIP); !has {
			break
		}
		if time.Since(healed) > 3*time.Second {
			t.Fatalf("the cut-off holder %s still holds %s 3 s after the partition healed", holder.ID, keptVIP)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("partition healed: %s dropped the kept address after %s", holder.ID, time.Since(healed).Round(time.Millisecond))
	if hs, _ := c.Holders(keptVIP); len(hs) != 1 || hs[0] == holder.Host {
		t.Fatalf("after the heal: holders %v, want one node other than %s", hs, holder.ID)
	}
}
