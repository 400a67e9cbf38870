package e2e

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
)

// single starts a one-node cluster (agent with --config and a fixed data dir) and a
// client namespace.
func single(t *testing.T) (*cluster.Cluster, *cluster.Agent) {
	t.Helper()
	dir := t.TempDir() // before the lab: cleanups run last-in first-out, so agents stop before it goes
	l := lab.New(t, lab.Options{Nodes: 1, Client: true})
	c := cluster.New(l, bin, dir)
	a, err := c.Start(context.Background(), 1, "", cluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c, a
}

func addrsOf(t *testing.T, h *lab.Host) []string {
	t.Helper()
	nh, err := h.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, err := nh.LinkByName(h.Link)
	if err != nil {
		t.Fatal(err)
	}
	as, err := nh.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range as {
		if a.IP.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.IPNet.String())
	}
	slices.Sort(out)
	return out
}

func TestSingleNodeAddressReachableAndAnnounced(t *testing.T) {
	ctx := context.Background()
	c, a := single(t)
	vip := netip.MustParseAddr("198.18.1.10")
	w, err := cluster.WatchGARP(c.Lab.Client(), vip)
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx)

	out, err := c.CLI(ctx, a, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0")
	if err != nil {
		t.Fatal(err)
	}
	t.Log(strings.TrimSpace(out))
	// The client sees a gratuitous ARP request and reply from the node's MAC.
	ops := map[arp.Operation]bool{}
	deadline := time.After(5 * time.Second)
	for len(ops) < 2 {
		select {
		case g := <-w.C():
			if g.MAC != a.Host.MAC.String() {
				t.Fatalf("GARP for %s from %s, want the node's MAC %s", vip, g.MAC, a.Host.MAC)
			}
			ops[g.Op] = true
		case <-deadline:
			t.Fatalf("client saw GARP ops %v for %s within 5 s, want request and reply", ops, vip)
		}
	}
	if err := cluster.Ping(ctx, c.Lab.Client(), vip); err != nil {
		t.Fatal(err)
	}
	// A TCP service on the node, reached through the cluster address.
	var ln net.Listener
	if err := a.Host.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", "198.18.1.10:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte("hello from n1\n"))
			conn.Close()
		}
	}()
	var conn net.Conn
	if err := c.Lab.Client().Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", "198.18.1.10:8080", 2*time.Second)
		return err
	}); err != nil {
		t.Fatalf("TCP connect to the cluster address from the client: %v", err)
	}
	buf := make([]byte, 64)
	n, _ := conn.Read(buf)
	conn.Close()
	if got := string(buf[:n]); got != "hello from n1\n" {
		t.Fatalf("TCP answer through the cluster address: got %q", got)
	}
	st, err := c.WaitStatus(ctx, a, 5*time.Second, func(st api.Status) bool { return cluster.Owners(st)["web"] == "n1" })
	if err != nil {
		t.Fatalf("status: %v (%+v)", err, st)
	}
	// status -o json carries the documented fields.
	js, err := c.CLI(ctx, a, "status", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Resources []map[string]any `json:"resources"`
		Nodes     []map[string]any `json:"nodes"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatalf("status -o json is not JSON: %v\n%s", err, js)
	}
	for _, k := range []string{"name", "address", "interface", "owner", "state"} {
		if _, ok := doc.Resources[0][k]; !ok {
			t.Errorf("status -o json: resources[0] lacks %q: %v", k, doc.Resources[0])
		}
	}
	for _, k := range []string{"id", "state", "leader"} {
		if _, ok := doc.Nodes[0][k]; !ok {
			t.Errorf("status -o json: nodes[0] lacks %q: %v", k, doc.Nodes[0])
		}
	}
	// Removing the resource removes the address and nothing else.
	if _, err := c.CLI(ctx, a, "resource", "remove", "web"); err != nil {
		t.Fatal(err)
	}
	waitAddrs(t, a.Host, []string{"198.18.0.101/16", "2001:2::101/64"})
}

// waitAddrs polls h's eth0 until its addresses equal want.
func waitAddrs(t *testing.T, h *lab.Host, want []string) {
	t.Helper()
	slices.Sort(want)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := addrsOf(t, h)
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("addresses on %s: got %v, want %v", h.Name, got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSingleNodeDriftRepair(t *testing.T) {
	ctx := context.Background()
	c, a := single(t)
	if _, err := c.CLI(ctx, a, "resource", "add", "web", "--address", "198.19.7.10/24", "--interface", "eth0"); err != nil {
		t.Fatal(err)
	}
	want := []string{"198.18.0.101/16", "198.19.7.10/24", "2001:2::101/64"}
	waitAddrs(t, a.Host, want)
	nh, err := a.Host.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	l, _ := nh.LinkByName("eth0")
	addr, _ := netlink.ParseAddr("198.19.7.10/24")
	start := time.Now()
	if err := nh.AddrDel(l, addr); err != nil {
		t.Fatal(err)
	}
	waitAddrs(t, a.Host, want)
	t.Logf("address deleted by hand was restored after %s", time.Since(start))
	// Its prefix route too.
	dst := &net.IPNet{IP: net.IPv4(198, 19, 7, 0).To4(), Mask: net.CIDRMask(24, 32)}
	if err := nh.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		rs, err := nh.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: dst}, netlink.RT_FILTER_DST)
		if err == nil && len(rs) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("prefix route 198.19.7.0/24 not restored within 5 s (routes %v)", rs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSingleNodeCrashLeftovers(t *testing.T) {
	ctx := context.Background()
	c, a := single(t)
	for _, r := range [][]string{
		{"web", "198.18.1.10/16"}, {"db", "198.19.8.10/24"}, {"v6", "2001:2::10/64"},
	} {
		if _, err := c.CLI(ctx, a, "resource", "add", r[0], "--address", r[1], "--interface", "eth0"); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"198.18.0.101/16", "198.18.1.10/16", "198.19.8.10/24", "2001:2::101/64", "2001:2::10/64"}
	waitAddrs(t, a.Host, want)
	if err := c.Kill(a); err != nil {
		t.Fatal(err)
	}
	// The fencing companion removes the dead agent's addresses at once, and only
	// those.
	start := time.Now()
	waitAddrs(t, a.Host, []string{"198.18.0.101/16", "2001:2::101/64"})
	t.Logf("fencing companion removed the addresses %s after kill -9 of the agent", time.Since(start))
	if err := c.Restart(ctx, a); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitStatus(ctx, a, 10*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 3 }); err != nil {
		t.Fatal(err)
	}
	waitAddrs(t, a.Host, want)
	b, err := os.ReadFile(filepath.Join(a.DataDir, "addresses.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rec struct {
		Addresses []struct {
			Address string `json:"address"`
		} `json:"addresses"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	if len(rec.Addresses) != 3 {
		t.Fatalf("address record after restart lists %d addresses, want 3 (no duplicates, no node addresses): %s", len(rec.Addresses), b)
	}
	log, _ := os.ReadFile(a.Proc().LogPath())
	if !strings.Contains(string(log), "previous run left behind") {
		t.Errorf("restart did not report the stale addresses it found; log:\n%s", log)
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// TestDevMode: `agent --dev` prints its URL and token and writes the token where the
// CLI finds it, so local use needs no flags.
func TestDevMode(t *testing.T) {
	ctx := context.Background()
	l := lab.New(t, lab.Options{Nodes: 1})
	h := l.Node(1)
	home := t.TempDir()
	env := append(os.Environ(), "HOME="+home)
	env = slices.DeleteFunc(env, func(e string) bool { return strings.HasPrefix(e, "CLUSTERD_") })
	agent := h.Command(ctx, bin, "agent", "--dev")
	agent.Env = env
	var out syncBuffer
	agent.Stdout = &out
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		agent.Process.Signal(syscall.SIGTERM)
		agent.Wait()
	})
	cli := func(args ...string) (string, error) {
		c := h.Command(ctx, bin, args...)
		c.Env = env
		b, err := c.CombinedOutput()
		return string(b), err
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if s, err := cli("status"); err == nil && strings.Contains(s, "leader dev") && strings.Contains(out.String(), "ready") {
			t.Logf("status without flags:\n%s", s)
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("status without --api or --token never worked: %v %s (agent said %q)", err, s, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "API http://127.0.0.1:7400") || !strings.Contains(out.String(), "dev token") {
		t.Errorf("dev agent did not print its URL and token: %q", out.String())
	}
	if s, err := cli("resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0"); err != nil {
		t.Fatalf("resource add without flags: %v %s", err, s)
	}
	waitAddrs(t, h, []string{"198.18.0.101/16", "198.18.1.10/16", "2001:2::101/64"})
	info, err := os.Stat(filepath.Join(home, ".clusterd-token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("~/.clusterd-token: %v (mode %v), want a 0600 file", err, info)
	}
	// Stopping the dev agent releases its address and removes its data.
	agent.Process.Signal(syscall.SIGTERM)
	agent.Wait()
	waitAddrs(t, h, []string{"198.18.0.101/16", "2001:2::101/64"})
}

// syncBuffer is a strings.Builder safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
