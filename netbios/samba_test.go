package netbios

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// The Samba lab: namespace "wins" (198.18.0.1, nmbd as WINS server with a wins hook
// that logs every add/refresh/delete) joined by a veth pair to namespace "node"
// (198.18.0.2 and the cluster addresses 198.18.0.10 and .11). nmbd runs as
// ../shared/NETBIOS.md says: foreground, no process group, dns proxy off, every
// directory in the test's temp dir, SIGTERM then SIGKILL by pid.

const (
	labWINS = "198.18.0.1"
	labNode = "198.18.0.2"
	labVIP1 = "198.18.0.10"
	labVIP2 = "198.18.0.11"
)

type sambaLab struct {
	wins, node *testNS
	dir        string
}

func newSambaLab(t testing.TB) *sambaLab {
	t.Helper()
	for _, bin := range []string{"nmbd", "nmblookup"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: the Samba lab tests need it (apt-get install samba samba-common-bin)", bin)
		}
	}
	l := &sambaLab{wins: newNS(t, "wins"), node: newNS(t, "node"), dir: t.TempDir()}
	l.wins.link(t, l.node, "w0", "n0")
	l.wins.addr(t, "w0", labWINS+"/24")
	for _, a := range []string{labNode, labVIP1, labVIP2} {
		l.node.addr(t, "n0", a+"/24")
	}
	l.conf(t, "client", "")
	return l
}

// conf writes DIR/NAME/smb.conf with the [global] lines given plus private dirs.
func (l *sambaLab) conf(t testing.TB, name, global string) string {
	t.Helper()
	d := filepath.Join(l.dir, name)
	var b strings.Builder
	fmt.Fprintf(&b, "[global]\n  workgroup = NBLAB\n  dns proxy = no\n  load printers = no\n  max log size = 0\n  log file = %s/log.%%m\n", d)
	for _, sub := range []string{"state", "cache", "lock", "pid", "private", "ncalrpc"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			t.Fatal(err)
		}
		key := sub + " directory"
		switch sub {
		case "private", "ncalrpc":
			key = sub + " dir"
		}
		fmt.Fprintf(&b, "  %s = %s/%s\n", key, d, sub)
	}
	b.WriteString(global)
	p := filepath.Join(d, "smb.conf")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// startWINS runs nmbd as WINS server granting TTLs of minTTL..maxTTL seconds and
// waits until it answers. Its wins hook logs one line per add/refresh/delete to
// hook.log (nmbd forks it for every change: the scale tests use startWINSNoHook).
func (l *sambaLab) startWINS(t testing.TB, minTTL, maxTTL int) {
	t.Helper()
	hook := filepath.Join(l.dir, "hook.sh")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %s/hook.log\n", l.dir)
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l.startNmbdWINS(t, minTTL, maxTTL, "  wins hook = "+hook+"\n")
}

func (l *sambaLab) startWINSNoHook(t testing.TB, minTTL, maxTTL int) {
	l.startNmbdWINS(t, minTTL, maxTTL, "")
}

func (l *sambaLab) startNmbdWINS(t testing.TB, minTTL, maxTTL int, extra string) {
	t.Helper()
	conf := l.conf(t, "wins", fmt.Sprintf(`  netbios name = NBLWINS
  server role = standalone server
  wins support = yes
  min wins ttl = %d
  max wins ttl = %d
%s  interfaces = %s/24
  bind interfaces only = yes
  local master = no
  domain master = no
  preferred master = no
`, minTTL, maxTTL, extra, labWINS))
	l.nmbd(t, l.wins, conf, "wins")
	// Ready when it answers a recursive query (negatively) from the node.
	conn, err := l.node.dial(t, labNode)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := exchange(t, conn, netip.AddrPortFrom(netip.MustParseAddr(labWINS), Port), nbns.NewNameQuery(1, nbns.Name{Label: "NOBODY", Suffix: 0x20}, nbns.FlagRD), 200*time.Millisecond); m != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nmbd WINS did not answer within 30 s; log:\n%s", l.read("wins.out"))
		}
	}
	conn.Close()
}

// nmbd starts nmbd in ns with conf and stops it (SIGTERM, then SIGKILL) at cleanup.
func (l *sambaLab) nmbd(t testing.TB, ns *testNS, conf, name string) {
	t.Helper()
	out, err := os.Create(filepath.Join(l.dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.command("nmbd", "--foreground", "--no-process-group", "--debug-stdout", "-d", "2", "--configfile="+conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); out.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
}

func (l *sambaLab) read(name string) string {
	b, _ := os.ReadFile(filepath.Join(l.dir, name))
	return string(b)
}

// nmblookup runs nmblookup in ns with the lab's client configuration.
func (l *sambaLab) nmblookup(ns *testNS, args ...string) (string, error) {
	cmd := ns.command("nmblookup", append([]string{"-s", filepath.Join(l.dir, "client", "smb.conf")}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// within polls cond every 50 ms until it holds or d passes.
func within(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// attach binds every cluster address in the node namespace and starts a responder
// for names on each, with the MAC of n0.
func (l *sambaLab) attach(t testing.TB, names []nbns.Name, addrs ...string) []*Responder {
	t.Helper()
	var out []*Responder
	for _, a := range addrs {
		conn, err := l.node.dial(t, a)
		if err != nil {
			t.Fatal(err)
		}
		r := NewResponder(ResponderConfig{Conn: conn, Addr: netip.MustParseAddr(a), Names: names, NodeType: nbns.HNode, MAC: l.node.mac(t, "n0")})
		run(t, r.Run)
		out = append(out, r)
	}
	return out
}

func TestSambaWINS(t *testing.T) {
	lab := newSambaLab(t)
	lab.startWINS(t, 30, 60)
	names := []nbns.Name{filesrv00, filesrv20}
	rs := lab.attach(t, names, labVIP1, labVIP2)
	var ev events
	c := NewClient(ClientConfig{
		Servers:        []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr(labWINS), Port)},
		Endpoints:      []Endpoint{rs[0], rs[1]},
		Names:          names,
		NodeType:       nbns.HNode,
		OnEvent:        ev.add,
		ChallengeCheck: 300 * time.Millisecond,
	})
	stop := run(t, c.Run)
	within(t, 20*time.Second, "every name registered from both addresses", allIn(c, StateRegistered))
	for _, s := range c.Status() {
		if s.TTL != 60 {
			t.Errorf("%v for %v: granted TTL %d, want 60 (the server's max wins ttl)", s.Name, s.Addr, s.TTL)
		}
	}

	out, err := lab.nmblookup(lab.wins, "-U", labWINS, "--recursion", "FILESRV#20")
	if err != nil || !strings.Contains(out, labVIP1+" FILESRV<20>") || !strings.Contains(out, labVIP2+" FILESRV<20>") {
		t.Errorf("nmblookup --recursion FILESRV#20 (err %v):\n%s\nwant both cluster addresses", err, out)
	}
	within(t, 5*time.Second, "wins hook add line", func() bool {
		return regexp.MustCompile(`add FILESRV 20 \d+ ` + labVIP1 + ` ` + labVIP2).MatchString(lab.read("hook.log"))
	})

	// Q251166: node status of the cluster address, as a client connecting to \\ADDRESS asks.
	out, err = lab.nmblookup(lab.wins, "-A", labVIP1)
	t.Logf("nmblookup -A %s:\n%s", labVIP1, out)
	mac := strings.ToUpper(strings.ReplaceAll(lab.node.mac(t, "n0").String(), ":", "-"))
	for _, re := range []string{`FILESRV\s+<00> -\s+H <ACTIVE>`, `FILESRV\s+<20> -\s+H <ACTIVE>`, `MAC Address = ` + mac} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("nmblookup -A %s (err %v) does not match %q:\n%s", labVIP1, err, re, out)
		}
	}

	// A second party registers FILESRV<20> (unique): Samba challenges 198.18.0.10,
	// our responder answers, the second party gets ACT_ERR and we report event 4320.
	conn, err := lab.node.dial(t, labNode)
	if err != nil {
		t.Fatal(err)
	}
	wins := netip.AddrPortFrom(netip.MustParseAddr(labWINS), Port)
	req := nbns.NewRegistration(0x8e48, filesrv20, 300, nbns.NBEntry{Flags: nbns.MakeNBFlags(nbns.HNode, false), Addr: netip.MustParseAddr(labNode)}, false)
	got := exchange(t, conn, wins, req, 5*time.Second)
	for got != nil && got.Opcode == nbns.OpWACK {
		got = receive(t, conn, 10*time.Second)
	}
	if got == nil || got.RCode != nbns.RCodeActive {
		t.Errorf("second party's registration got %v, want ACT_ERR", got)
	}
	within(t, 5*time.Second, "event 4320 (defended)", func() bool { return ev.count(EventNameConflict) == 1 })
	if e := ev.list()[0]; !e.Defended || e.Addr != netip.MustParseAddr(labVIP1) {
		t.Errorf("event %s, want FILESRV<20> defended by %s", e, labVIP1)
	}

	// Offline: every name released from every address.
	if err := stop(); err != nil {
		t.Fatalf("Run (releases): %v", err)
	}
	for _, n := range []string{"FILESRV#20", "FILESRV#00"} {
		if out, err := lab.nmblookup(lab.wins, "-U", labWINS, "--recursion", n); err == nil || strings.Contains(out, labVIP1) || strings.Contains(out, labVIP2) {
			t.Errorf("after release, nmblookup --recursion %s (err %v):\n%s\nwant name not found", n, err, out)
		}
	}
	within(t, 5*time.Second, "wins hook delete lines", func() bool {
		h := lab.read("hook.log")
		return strings.Contains(h, "delete FILESRV 20") && strings.Contains(h, "delete FILESRV 00")
	})
	t.Logf("wins hook log:\n%s", lab.read("hook.log"))
	for _, s := range c.Status() {
		if s.State != StateReleased {
			t.Errorf("%v for %v: %v after Run, want released", s.Name, s.Addr, s.State)
		}
	}
	if n := len(ev.list()); n != 1 {
		t.Errorf("events %v, want only the defended conflict", ev.list())
	}
}

// TestSambaHostNmbdCoexists: a host nmbd in the node namespace binds 0.0.0.0:137
// with SO_REUSEADDR; our interface still attaches, and node status sent to the
// cluster address is answered by us with the cluster's names, not the host's.
func TestSambaHostNmbdCoexists(t *testing.T) {
	lab := newSambaLab(t)
	conf := lab.conf(t, "host", fmt.Sprintf(`  netbios name = HOSTNB
  server role = standalone server
  interfaces = %s/24
  bind interfaces only = yes
  local master = no
  domain master = no
  preferred master = no
`, labNode))
	lab.nmbd(t, lab.node, conf, "host")
	within(t, 30*time.Second, "host nmbd answering node status on "+labNode, func() bool {
		out, _ := lab.nmblookup(lab.wins, "-A", labNode)
		return strings.Contains(out, "HOSTNB")
	})
	lab.attach(t, []nbns.Name{filesrv20}, labVIP1)
	out, err := lab.nmblookup(lab.wins, "-A", labVIP1)
	if err != nil || !strings.Contains(out, "FILESRV") || strings.Contains(out, "HOSTNB") {
		t.Errorf("nmblookup -A %s with a host nmbd running (err %v):\n%s\nwant FILESRV from our responder only", labVIP1, err, out)
	}
}

// TestSambaRefreshAndSurvivor: two clients (as on two nodes) carry FILESRV<20> on
// one address each. Samba grants 4 s, so refreshes (opcode 8) come every 2 s. When
// one goes offline its release drops the whole record on Samba; the name must still
// resolve to the other address straight after.
func TestSambaRefreshAndSurvivor(t *testing.T) {
	lab := newSambaLab(t)
	lab.startWINS(t, 4, 4)
	rs := lab.attach(t, []nbns.Name{filesrv20}, labVIP1, labVIP2)
	wins := []netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr(labWINS), Port)}
	peers := func(nbns.Name) []netip.Addr {
		return []netip.Addr{netip.MustParseAddr(labVIP1), netip.MustParseAddr(labVIP2)}
	}
	var ev events
	a := NewClient(ClientConfig{Servers: wins, Endpoints: []Endpoint{rs[0]}, Names: []nbns.Name{filesrv20}, NodeType: nbns.HNode, Peers: peers, OnEvent: ev.add})
	b := NewClient(ClientConfig{Servers: wins, Endpoints: []Endpoint{rs[1]}, Names: []nbns.Name{filesrv20}, NodeType: nbns.HNode, Peers: peers, OnEvent: ev.add})
	run(t, a.Run)
	within(t, 20*time.Second, "a registered", allIn(a, StateRegistered))
	stopB := run(t, b.Run)
	within(t, 20*time.Second, "b registered", allIn(b, StateRegistered))
	within(t, 10*time.Second, "a refresh in the wins hook log", func() bool {
		return regexp.MustCompile(`refresh FILESRV 20 4 ` + labVIP1).MatchString(lab.read("hook.log"))
	})
	out, err := lab.nmblookup(lab.wins, "-U", labWINS, "--recursion", "FILESRV#20")
	if err != nil || !strings.Contains(out, labVIP1) || !strings.Contains(out, labVIP2) {
		t.Fatalf("before b goes offline (err %v):\n%s\nwant both addresses", err, out)
	}
	if err := stopB(); err != nil {
		t.Fatalf("b's releases: %v", err)
	}
	out, err = lab.nmblookup(lab.wins, "-U", labWINS, "--recursion", "FILESRV#20")
	if err != nil || !strings.Contains(out, labVIP1+" FILESRV<20>") || strings.Contains(out, labVIP2) {
		t.Errorf("right after b released (err %v):\n%s\nwant only %s", err, out, labVIP1)
	}
	t.Logf("wins hook log:\n%s", lab.read("hook.log"))
	if got := ev.list(); len(got) != 0 {
		t.Errorf("events %v, want none (the two addresses are peers)", got)
	}
	if got := a.Status()[0].State; got != StateRegistered {
		t.Errorf("a is %v, want registered", got)
	}
}
