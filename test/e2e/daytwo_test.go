package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// TestQuorumLossAndRecover: with two of three voters gone the survivor's holder
// drops its addresses within the lease (event 1177, /readyz says why); `clusterd
// recover` on the survivor (agent stopped) brings them back. A recover with a
// majority alive is refused.
func TestQuorumLossAndRecover(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1, n2, n3 := c.Agent(1, cluster.Options{}), c.Agent(2, cluster.Options{}), c.Agent(3, cluster.Options{})
	if _, err := c.CLI(ctx, n1, "resource", "add", "vip", "--address", "198.18.1.10/16", "--interface", "eth0", "--preferred-owner", "n1"); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.18.1.10")
	if h, err := c.WaitHolder(vip, 10*time.Second, nil); err != nil || h != n1.Host {
		t.Fatalf("vip on %v (%v), want n1", h, err)
	}

	// A recover while the others are alive is refused, and changes nothing.
	if err := c.Signal(n1, 15); err != nil { // SIGTERM: graceful stop
		t.Fatal(err)
	}
	out, err := c.Lab.Node(1).Run(ctx, bin, "recover", "--config", n1.Config)
	if err == nil || !strings.Contains(string(out)+err.Error(), "majority") {
		t.Fatalf("recover with two voters alive: %v\n%s", err, out)
	}
	if err := c.Restart(ctx, n1); err != nil {
		t.Fatal(err)
	}
	// n1's graceful stop released the address and a survivor took it (failback
	// "never": it stays there); the node holding it now is the one that survives.
	h, err := c.WaitHolder(vip, 10*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	survivorAgent := n1
	for _, a := range []*cluster.Agent{n1, n2, n3} {
		if a.Host == h {
			survivorAgent = a
		}
	}
	var others []*cluster.Agent
	for _, a := range []*cluster.Agent{n1, n2, n3} {
		if a != survivorAgent {
			others = append(others, a)
		}
	}
	n1 = survivorAgent
	n2, n3 = others[0], others[1]
	if _, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool {
		for _, n := range st.Nodes {
			if n.State != "up" {
				return false
			}
		}
		return len(st.Nodes) == 3
	}); err != nil {
		t.Fatal(err)
	}

	// Two voters stop for good.
	start := time.Now()
	for _, a := range []*cluster.Agent{n2, n3} {
		if err := c.Kill(a); err != nil {
			t.Fatal(err)
		}
	}
	for {
		has, _ := cluster.HasAddr(n1.Host, vip)
		if !has {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("the survivor still holds %s 5 s after losing quorum", vip)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("quorum lost: the survivor dropped %s after %s", vip, time.Since(start))
	var body string
	for deadline := time.Now().Add(3 * time.Second); ; {
		resp, err := c.HTTP(n1.Host, 2*time.Second).Get(n1.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body = readAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 503 && strings.Contains(body, "[-] lease failed: cut off from a majority of voters") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz without quorum: %d\n%s", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for deadline := time.Now().Add(3 * time.Second); !strings.Contains(readLog(t, n1), "event=1177"); {
		if time.Now().After(deadline) {
			t.Fatalf("no event 1177 on the survivor")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Disaster recovery on the survivor.
	if err := c.Signal(n1, 15); err != nil {
		t.Fatal(err)
	}
	if out, err := c.Lab.Node(1).Run(ctx, bin, "recover", "--config", n1.Config); err != nil {
		t.Fatalf("recover: %v\n%s", err, out)
	}
	if err := c.Restart(ctx, n1); err != nil {
		t.Fatal(err)
	}
	h, err = c.WaitHolder(vip, 15*time.Second, nil)
	if err != nil || h != n1.Host {
		t.Fatalf("after recover vip on %v (%v), want %s", h, err, n1.ID)
	}
	for _, id := range []string{n2.ID, n3.ID} {
		if out, err := c.CLI(ctx, n1, "leave", id); err != nil {
			t.Fatalf("leave %s after recover: %v\n%s", id, err, out)
		}
	}
}

func readAll(resp interface {
	Read([]byte) (int, error)
}) string {
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			return b.String()
		}
	}
}

// TestSnapshotRestoreIntoNewCluster: a backup of a live cluster restored into a
// brand-new cluster brings every resource back online.
func TestSnapshotRestoreIntoNewCluster(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	addSix(t, c, n1)
	file := filepath.Join(t.TempDir(), "backup.json")
	if out, err := c.CLI(ctx, n1, "snapshot", "save", file); err != nil {
		t.Fatalf("snapshot save: %v\n%s", err, out)
	}
	// Destroy the whole cluster, data dirs included.
	for i := 1; i <= 3; i++ {
		a := c.Agent(i, cluster.Options{})
		c.Kill(a)
		os.RemoveAll(a.DataDir)
	}
	dir := t.TempDir()
	l2 := lab.New(t, lab.Options{Nodes: 3, Client: true})
	c2 := cluster.New(l2, bin, dir)
	if err := c2.Bootstrap(ctx, 3, cluster.Options{}); err != nil {
		t.Fatal(err)
	}
	m1 := c2.Agent(1, cluster.Options{})
	if out, err := c2.CLI(ctx, m1, "snapshot", "restore", file, "--yes"); err != nil {
		t.Fatalf("snapshot restore: %v\n%s", err, out)
	}
	st, err := c2.WaitStatus(ctx, m1, 10*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 6 })
	if err != nil {
		t.Fatalf("restored resources not online: %v (%+v)", err, st.Resources)
	}
	for i := 1; i <= 6; i++ {
		if _, err := c2.WaitHolder(vipOf(fmt.Sprintf("r%d", i)), 5*time.Second, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// TestHooks: an online hook starts a TCP service on the address and an offline hook
// stops it; the client reaches the service across a failover; a failing online hook
// moves the resource; a hanging hook is killed at its timeout.
func TestHooks(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	dir := t.TempDir()
	online := filepath.Join(dir, "online.sh")
	offline := filepath.Join(dir, "offline.sh")
	os.WriteFile(online, []byte(`#!/bin/sh
echo "online $CLUSTERD_RESOURCE $CLUSTERD_ADDRESS on $CLUSTERD_NODE"
case "$CLUSTERD_NODE" in n3) echo "refusing on n3" >&2; exit 7 ;; esac
python3 -m http.server --bind "$CLUSTERD_ADDRESS" 8080 >/dev/null 2>&1 &
echo $! > `+dir+`/http.$CLUSTERD_NODE.pid
`), 0o755)
	os.WriteFile(offline, []byte(`#!/bin/sh
echo "offline $CLUSTERD_RESOURCE on $CLUSTERD_NODE"
kill $(cat `+dir+`/http.$CLUSTERD_NODE.pid) 2>/dev/null
rm -f `+dir+`/http.$CLUSTERD_NODE.pid
`), 0o755)
	if _, err := c.CLI(ctx, n1, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0",
		"--preferred-owner", "n1", "--hook-online", online, "--hook-offline", offline, "--hook-timeout", "5s"); err != nil {
		t.Fatal(err)
	}
	get := func() error { return clientGet(ctx, c, "198.18.1.10") }
	if err := get(); err != nil {
		t.Fatalf("service started by the online hook on n1 not reachable: %v", err)
	}
	// Graceful move to n2: offline hook on n1, online hook on n2.
	if out, err := c.CLI(ctx, n1, "move", "web", "--to", "n2", "--wait"); err != nil {
		t.Fatalf("move: %v\n%s", err, out)
	}
	if err := get(); err != nil {
		t.Fatalf("service not reachable after the move to n2: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "http.n1.pid")); err == nil {
		t.Errorf("offline hook did not stop the service on n1")
	}
	// A failing online hook (n3 refuses) moves the resource on.
	if _, err := c.CLI(ctx, n1, "move", "web", "--to", "n3"); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool {
		o := cluster.Owners(st)["web"]
		return o != "" && o != "n3"
	})
	if err != nil {
		t.Fatalf("failing online hook on n3 did not move web away: %v (%+v)", err, st.Resources)
	}
	if log := readLog(t, c.Agent(3, cluster.Options{})); !strings.Contains(log, "refusing on n3") || !strings.Contains(log, "online hook") {
		t.Errorf("n3's log lacks the hook's output and failure")
	}
	if err := get(); err != nil {
		t.Fatalf("service not reachable after the failed hook moved web to %s: %v", cluster.Owners(st)["web"], err)
	}
	// A hanging hook is killed at its timeout.
	hang := filepath.Join(dir, "hang.sh")
	os.WriteFile(hang, []byte("#!/bin/sh\nsleep 60\n"), 0o755)
	if _, err := c.CLI(ctx, n1, "resource", "add", "slow", "--address", "198.18.1.11/16", "--interface", "eth0",
		"--possible-owner", "n1", "--hook-online", hang, "--hook-timeout", "1s"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(readLog(t, n1), "timed out") {
		if time.Now().After(deadline) {
			t.Fatalf("hanging online hook not reported as timed out within 10 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRollingUpgrade: drain, restart (the "new binary"), undrain, node by node, while
// a prober measures the client's total outage of one address.
func TestRollingUpgrade(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	if _, err := c.CLI(ctx, n1, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0"); err != nil {
		t.Fatal(err)
	}
	vip := netip.MustParseAddr("198.18.1.10")
	if _, err := c.WaitHolder(vip, 10*time.Second, nil); err != nil {
		t.Fatal(err)
	}
	p, err := cluster.NewProber(c.Lab.Client(), vip, 5*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go p.Run(pctx)
	time.Sleep(100 * time.Millisecond)
	for i := 1; i <= 3; i++ {
		a := c.Agent(i, cluster.Options{})
		other := c.Agent(1+i%3, cluster.Options{})
		if out, err := c.CLI(ctx, other, "drain", a.ID, "--wait"); err != nil {
			t.Fatalf("drain %s: %v\n%s", a.ID, err, out)
		}
		if err := c.Signal(a, 15); err != nil {
			t.Fatal(err)
		}
		if err := c.Restart(ctx, a); err != nil {
			t.Fatal(err)
		}
		if out, err := c.CLI(ctx, other, "undrain", a.ID); err != nil {
			t.Fatalf("undrain %s: %v\n%s", a.ID, err, out)
		}
		if _, err := c.WaitStatus(ctx, other, 10*time.Second, func(st api.Status) bool {
			for _, n := range st.Nodes {
				if n.State != "up" {
					return false
				}
			}
			return len(cluster.Owners(st)) == 1
		}); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	stop()
	replies := p.Replies()
	var total, worst time.Duration
	for i := 1; i < len(replies); i++ {
		if gap := replies[i].At.Sub(replies[i-1].At); gap > 20*time.Millisecond {
			total += gap
			worst = max(worst, gap)
		}
	}
	t.Logf("rolling upgrade of 3 nodes: total client outage %s, longest %s, two-MAC rounds %d", total, worst, cluster.DoubleRounds(replies))
	if n := cluster.DoubleRounds(replies); n > 0 {
		t.Errorf("two holders during the rolling upgrade (%d rounds)", n)
	}
	if worst > time.Second {
		t.Errorf("longest outage %s during the rolling upgrade; each step should be a graceful move", worst)
	}
}

// TestMaintenanceFreezesPlacement: with maintenance on, a dead holder's address is not
// failed over (leases still removed it from the dead node); off, it is.
func TestMaintenanceFreezesPlacement(t *testing.T) {
	ctx := context.Background()
	c, holder, vip := safetyCluster(t, "")
	other := survivor(c, holder)
	if out, err := c.CLI(ctx, other, "maintenance", "on", "--reason", "switch firmware"); err != nil {
		t.Fatalf("maintenance on: %v\n%s", err, out)
	}
	out, _ := c.CLI(ctx, other, "status")
	if !strings.Contains(out, "MAINTENANCE MODE: placement frozen (switch firmware)") {
		t.Errorf("status does not show maintenance:\n%s", out)
	}
	if err := c.Kill(holder); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if hs, _ := c.Holders(vip); len(hs) != 0 {
		t.Fatalf("during maintenance the address moved to %v", hs)
	}
	if _, err := c.CLI(ctx, other, "maintenance", "off"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitHolder(vip, 10*time.Second, holder.Host); err != nil {
		t.Fatalf("after maintenance off: %v", err)
	}
}
