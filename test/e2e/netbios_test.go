package e2e

import (
	"context"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/netbios"
	"github.com/clusterd/clusterd/netbios/nbns"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// winsCluster starts n nodes, a client and Samba's nmbd as the WINS server.
func winsCluster(t *testing.T, n int) (*cluster.Cluster, *lab.WINSServer) {
	t.Helper()
	dir := t.TempDir()
	l := lab.New(t, lab.Options{Nodes: n, Client: true, WINS: true})
	w, err := l.StartWINS("min wins ttl = 30", "max wins ttl = 60")
	if err != nil {
		t.Fatal(err)
	}
	c := cluster.New(l, bin, dir)
	if err := c.Bootstrap(context.Background(), n, cluster.Options{Extra: "address_lifetime = \"4s\"\n"}); err != nil {
		t.Fatal(err)
	}
	return c, w
}

// winsLookup asks the WINS server for name (e.g. "FILESRV#20") from the client and
// returns the addresses it answers with.
func winsLookup(ctx context.Context, c *cluster.Cluster, name string) []string {
	out, _ := c.Lab.Client().Run(ctx, "nmblookup", "-U", "198.18.0.1", "--recursion", name)
	var addrs []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if _, err := netip.ParseAddr(f0(f)); err == nil && len(f) >= 2 && strings.HasPrefix(f[1], strings.Split(name, "#")[0]) {
			addrs = append(addrs, f[0])
		}
	}
	slices.Sort(addrs)
	return addrs
}

func waitLookup(t *testing.T, c *cluster.Cluster, name string, want []string) {
	t.Helper()
	ctx := context.Background()
	slices.Sort(want)
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := winsLookup(ctx, c, name)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("WINS lookup of %s: got %v, want %v", name, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestNetBIOSRegisterNodeStatusRelease(t *testing.T) {
	ctx := context.Background()
	c, _ := winsCluster(t, 1)
	a := c.Agent(1, cluster.Options{})
	if _, err := c.CLI(ctx, a, "resource", "add", "files", "--address", "198.18.1.10/16", "--interface", "eth0",
		"--netbios-name", "FILESRV", "--wins", "198.18.0.1"); err != nil {
		t.Fatal(err)
	}
	waitLookup(t, c, "FILESRV#20", []string{"198.18.1.10"})
	waitLookup(t, c, "FILESRV#00", []string{"198.18.1.10"})

	// Q251166: a node status query to the cluster address lists its names.
	out, err := c.Lab.Client().Run(ctx, "nmblookup", "-A", "198.18.1.10")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"FILESRV", "<20>", "<00>", strings.ToUpper(a.Host.MAC.String()[:2])} {
		if !strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(want)) {
			t.Errorf("nmblookup -A 198.18.1.10 does not list %q:\n%s", want, out)
		}
	}
	st, err := c.WaitStatus(ctx, a, 10*time.Second, func(st api.Status) bool {
		for _, r := range st.Resources {
			if r.Name == "files" && len(r.NetBIOS) == 2 {
				return r.NetBIOS[0].State == "registered" && r.NetBIOS[1].State == "registered"
			}
		}
		return false
	})
	if err != nil {
		t.Fatalf("status does not show both names registered: %v (%+v)", err, st.Resources)
	}
	text, _ := c.CLI(ctx, a, "status")
	if !strings.Contains(text, "netbios FILESRV<20> registered") {
		t.Errorf("status table lacks the name state:\n%s", text)
	}

	// Offline: every name released, then the address removed.
	if _, err := c.CLI(ctx, a, "resource", "remove", "files"); err != nil {
		t.Fatal(err)
	}
	waitLookup(t, c, "FILESRV#20", nil)
	waitLookup(t, c, "FILESRV#00", nil)
	waitAddrs(t, a.Host, []string{"198.18.0.101/16", "2001:2::101/64"})
}

// TestNetBIOSFailover: kill -9 of the holder; the name resolves to the address on
// its new holder, with no conflict event.
func TestNetBIOSFailover(t *testing.T) {
	ctx := context.Background()
	c, _ := winsCluster(t, 3)
	n1 := c.Agent(1, cluster.Options{})
	if _, err := c.CLI(ctx, n1, "resource", "add", "files", "--address", "198.18.1.10/16", "--interface", "eth0",
		"--netbios-name", "FILESRV<20>", "--wins", "198.18.0.1", "--preferred-owner", "n2"); err != nil {
		t.Fatal(err)
	}
	waitLookup(t, c, "FILESRV#20", []string{"198.18.1.10"})
	n2 := c.Agent(2, cluster.Options{})
	if err := c.Kill(n2); err != nil {
		t.Fatal(err)
	}
	h, err := c.WaitHolder(netip.MustParseAddr("198.18.1.10"), 10*time.Second, n2.Host)
	if err != nil {
		t.Fatal(err)
	}
	var newHolder *cluster.Agent
	for i := 1; i <= 3; i++ {
		if c.Agent(i, cluster.Options{}).Host == h {
			newHolder = c.Agent(i, cluster.Options{})
		}
	}
	if _, err := c.WaitStatus(ctx, newHolder, 10*time.Second, func(st api.Status) bool {
		for _, r := range st.Resources {
			if r.Name == "files" && len(r.NetBIOS) == 1 && r.NetBIOS[0].State == "registered" {
				return true
			}
		}
		return false
	}); err != nil {
		t.Fatalf("name not registered by the new holder %s: %v", h.Name, err)
	}
	waitLookup(t, c, "FILESRV#20", []string{"198.18.1.10"})
	out, err := c.Lab.Client().Run(ctx, "nmblookup", "-A", "198.18.1.10")
	if err != nil || !strings.Contains(strings.ToUpper(string(out)), strings.ToUpper(strings.ReplaceAll(h.MAC.String(), ":", "-"))) {
		t.Errorf("node status after failover does not come from %s (%s): %v\n%s", h.Name, h.MAC, err, out)
	}
	if log := readLog(t, newHolder); strings.Contains(log, "event=4320") {
		t.Errorf("failover raised a name conflict (event 4320):\n%s", log)
	}
}

// TestNetBIOSNameOnTwoNodes: one name on two addresses held by two nodes; one goes
// offline, the other still resolves.
func TestNetBIOSNameOnTwoNodes(t *testing.T) {
	ctx := context.Background()
	c, _ := winsCluster(t, 3)
	n1 := c.Agent(1, cluster.Options{})
	for _, r := range [][]string{{"a", "198.18.1.10/16", "n1"}, {"b", "198.18.1.11/16", "n2"}} {
		if _, err := c.CLI(ctx, n1, "resource", "add", r[0], "--address", r[1], "--interface", "eth0",
			"--netbios-name", "SHARED<20>", "--wins", "198.18.0.1", "--preferred-owner", r[2], "--possible-owner", r[2]); err != nil {
			t.Fatal(err)
		}
	}
	waitLookup(t, c, "SHARED#20", []string{"198.18.1.10", "198.18.1.11"})
	if _, err := c.CLI(ctx, n1, "resource", "remove", "a"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitLookup(t, c, "SHARED#20", []string{"198.18.1.11"})
	t.Logf("after removing a, SHARED#20 resolved to b alone after %s", time.Since(start))
}

// TestNetBIOSConflictEvent: a second party (the client, with clusterd's own NetBIOS
// stack) registering our name with the WINS server raises event 4320.
func TestNetBIOSConflictEvent(t *testing.T) {
	ctx := context.Background()
	c, _ := winsCluster(t, 1)
	a := c.Agent(1, cluster.Options{})
	if _, err := c.CLI(ctx, a, "resource", "add", "files", "--address", "198.18.1.10/16", "--interface", "eth0",
		"--netbios-name", "FILESRV<20>", "--wins", "198.18.0.1"); err != nil {
		t.Fatal(err)
	}
	waitLookup(t, c, "FILESRV#20", []string{"198.18.1.10"})
	client := c.Lab.Client()
	var conn net.PacketConn
	if err := client.Do(func() error {
		var err error
		conn, err = netbios.Dial(client.Addr.Addr())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	name, _ := netbios.ParseName("FILESRV<20>")
	resp := netbios.NewResponder(netbios.ResponderConfig{Conn: conn, Addr: client.Addr.Addr(), Names: []nbns.Name{name}, NodeType: nbns.HNode, MAC: client.MAC})
	rival := netbios.NewClient(netbios.ClientConfig{
		Servers:   []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:137")},
		Endpoints: []netbios.Endpoint{resp}, Names: []nbns.Name{name}, NodeType: nbns.HNode,
	})
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go resp.Run(rctx)
	go rival.Run(rctx)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(readLog(t, a), "event=4320") {
		if time.Now().After(deadline) {
			t.Fatalf("no event 4320 on the holder after a second party registered its name; rival state %+v", rival.Status())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, line := range strings.Split(readLog(t, a), "\n") {
		if strings.Contains(line, "event=4320") {
			t.Logf("holder logged: %s", line)
			break
		}
	}
}

func readLog(t *testing.T, a *cluster.Agent) string {
	t.Helper()
	p := a.Proc()
	if p == nil {
		return ""
	}
	b, _ := os.ReadFile(p.LogPath())
	return string(b)
}

func f0(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[0]
}
