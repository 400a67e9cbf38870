package lab_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/test/lab"
)

// init locks the main goroutine to the main thread, which Go never ends, so that
// tests run on threads that can end: TestStartSurvivesThreadExits needs that to fail
// when it should.
func init() { runtime.LockOSThread() }

// ping sends one echo request from h to addr and waits up to wait for the reply.
func ping(h *lab.Host, addr netip.Addr, wait string) error {
	_, err := h.Run(context.Background(), "ping", "-n", "-c", "1", "-W", wait, addr.String())
	return err
}

// reach fails the test unless from can ping to over IPv4 and IPv6.
func reach(t *testing.T, from, to *lab.Host) {
	t.Helper()
	for _, a := range []netip.Addr{to.Addr.Addr(), to.Addr6.Addr()} {
		if err := ping(from, a, "2"); err != nil {
			t.Errorf("ping %s from %s: %v", a, from.Name, err)
		}
	}
}

// unreachable fails the test if from can ping to over IPv4 or IPv6.
func unreachable(t *testing.T, from, to *lab.Host) {
	t.Helper()
	for _, a := range []netip.Addr{to.Addr.Addr(), to.Addr6.Addr()} {
		if err := ping(from, a, "0.3"); err == nil {
			t.Errorf("ping %s from %s: got a reply, want none", a, from.Name)
		}
	}
}

// nsPids lists the processes in namespace name with `ip netns pids`, independently of
// the lab's own sweep code.
func nsPids(t *testing.T, name string) []int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v: %s", name, err, out)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("ip netns pids %s: bad pid %q", name, f)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitInNS polls until pid runs in namespace name with command comm (after `ip netns
// exec` has exec'd it).
func waitInNS(t *testing.T, pid int, name, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(c)) == comm && slices.Contains(nsPids(t, name), pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: not running %s in %s after 5 s (comm %q)", pid, comm, name, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitComm polls until pid runs command comm.
func waitComm(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.TrimSpace(string(c)) == comm || strings.Contains(string(stat), ") Z ") {
			return // running comm, or exited (the checks after it tell)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: not running %s after 5 s (comm %q)", pid, comm, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// namespaces lists the names in /run/netns that start with prefix.
func namespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func gone(pid int) bool { return unix.Kill(pid, 0) == unix.ESRCH }

func TestLabShapeAndPing(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 3, Client: true})
	if l.WINS() != nil {
		t.Errorf("WINS() = %v without Options.WINS, want nil", l.WINS())
	}
	c := l.Client()
	if got, want := c.Addr, netip.MustParsePrefix("198.18.0.2/16"); got != want {
		t.Errorf("client Addr = %v, want %v", got, want)
	}
	if got, want := l.Node(3).Addr6, netip.MustParsePrefix("2001:2::103/64"); got != want {
		t.Errorf("node 3 Addr6 = %v, want %v", got, want)
	}
	prefix := fmt.Sprintf("%s%d-", lab.Prefix, os.Getpid())
	for _, h := range l.Hosts() {
		if !strings.HasPrefix(h.Name, prefix) {
			t.Errorf("host name %q, want prefix %q", h.Name, prefix)
		}
		checkLink(t, h)
	}
	for _, n := range l.Nodes() {
		reach(t, c, n)
	}
	reach(t, l.Node(1), c)
	reach(t, l.Node(2), l.Node(3))
}

// checkLink checks eth0 in h as the kernel reports it: the MAC, the IPv4 address with
// its broadcast, the IPv6 address usable at once (not tentative), and lo up.
func checkLink(t *testing.T, h *lab.Host) {
	t.Helper()
	nh, err := h.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	eth, err := nh.LinkByName(h.Link)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	if got := eth.Attrs().HardwareAddr; !bytes.Equal(got, h.MAC) {
		t.Errorf("%s: %s MAC = %v, want %v", h.Name, h.Link, got, h.MAC)
	}
	addrs, err := nh.AddrList(eth, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var found4, found6 bool
	for _, a := range addrs {
		p, _ := netip.AddrFromSlice(a.IP)
		switch p.Unmap() {
		case h.Addr.Addr():
			found4 = true
			if got, want := a.Broadcast.String(), "198.18.255.255"; got != want {
				t.Errorf("%s: %v broadcast = %s, want %s", h.Name, h.Addr, got, want)
			}
		case h.Addr6.Addr():
			found6 = true
			if a.Flags&unix.IFA_F_TENTATIVE != 0 {
				t.Errorf("%s: %v is tentative (DAD not disabled)", h.Name, h.Addr6)
			}
		}
	}
	if !found4 || !found6 {
		t.Errorf("%s: addresses on %s = %v, want %v and %v", h.Name, h.Link, addrs, h.Addr, h.Addr6)
	}
	lo, err := nh.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("%s: lo is down", h.Name)
	}
}

func TestPartitionHeal(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2, Client: true})
	n1, n2, c := l.Node(1), l.Node(2), l.Client()
	if err := n1.Partition(c); err != nil {
		t.Fatal(err)
	}
	unreachable(t, c, n1)
	unreachable(t, n1, c)
	reach(t, c, n2)  // the client's other links work
	reach(t, n1, n2) // and so do n1's
	if err := n1.Heal(); err != nil {
		t.Fatal(err)
	}
	reach(t, c, n1)
	reach(t, n1, c)
}

func TestLoss(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)
	ctx := context.Background()
	if err := n1.Loss(30); err != nil {
		t.Fatal(err)
	}
	rules, err := l.Rules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`iifname "n1" numgen random mod 100 < 30 drop`,
		`oifname "n1" numgen random mod 100 < 30 drop`,
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("after Loss(30), nft list has no %q:\n%s", want, rules)
		}
	}
	if err := n1.Loss(100); err != nil {
		t.Fatal(err)
	}
	unreachable(t, n2, n1)
	if err := n1.Loss(0); err != nil {
		t.Fatal(err)
	}
	if rules, err := l.Rules(ctx); err != nil || strings.Contains(rules, "numgen") {
		t.Errorf("after Loss(0): nft list = %q, %v; want no numgen rule", rules, err)
	}
	reach(t, n2, n1)
	if err := n1.Loss(101); err == nil {
		t.Errorf("Loss(101) = nil, want an error")
	}
	if err := l.Switch().Loss(10); err == nil {
		t.Errorf("Loss on the switch = nil, want an error")
	}
}

func TestLinkDownUp(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1, Client: true})
	n1, c := l.Node(1), l.Client()
	if err := n1.LinkDown(); err != nil {
		t.Fatal(err)
	}
	nh, err := n1.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	eth, err := nh.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	if eth.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
		t.Errorf("after LinkDown, eth0 in %s still has carrier", n1.Name)
	}
	unreachable(t, c, n1)
	if err := n1.LinkUp(); err != nil {
		t.Fatal(err)
	}
	reach(t, c, n1)
}

func TestStartKill(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1})
	n1 := l.Node(1)
	p, err := n1.Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	waitInNS(t, p.Pid(), n1.Name, "sleep")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
		t.Errorf("Wait after Kill = %v, want killed by SIGKILL", err)
	}
	if !gone(p.Pid()) {
		t.Errorf("pid %d still exists after Kill", p.Pid())
	}

	p, err = n1.Start("sh", "-c", "echo out; echo err >&2")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	log, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(log), "out\nerr\n"; got != want {
		t.Errorf("log %s = %q, want %q", p.LogPath(), got, want)
	}
}

func TestTeardownLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	grace := 200 * time.Millisecond
	l, err := lab.Create(ctx, lab.Options{Nodes: 1, Client: true, WINS: true, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})
	tracked, err := l.Node(1).Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	stubborn, err := l.WINS().Start("sh", "-c", "trap '' TERM; echo ready; sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	stray := l.Client().Command(ctx, "sleep", "60") // not tracked: the sweep must get it
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	waitInNS(t, tracked.Pid(), l.Node(1).Name, "sleep")
	waitInNS(t, stray.Process.Pid, l.Client().Name, "sleep")
	waitLog(t, stubborn, "ready") // SIGTERM is ignored from here on
	logDir := filepathDir(tracked.LogPath())
	// Hold node 1's namespace open, as a leaked socket would: Close must still cut it
	// off the LAN by deleting its veth.
	held, err := netns.GetFromPath("/run/netns/" + l.Node(1).Name)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	start := time.Now()
	err = l.Close()
	closed = true
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took < grace || took > grace+3*time.Second {
		t.Errorf("Close took %v, want the %v grace for the shell ignoring SIGTERM and little more", took, grace)
	}
	if left := namespaces(t, lab.Prefix+l.ID()+"-"); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	nh, err := netlink.NewHandleAt(held)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	if links, err := nh.LinkList(); err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("links left in a held node namespace after Close: %v, %v; want only lo", linkNames(links), err)
	}
	stray.Wait()
	for _, pid := range []int{tracked.Pid(), stubborn.Pid(), stray.Process.Pid} {
		if !gone(pid) {
			t.Errorf("pid %d still exists after Close", pid)
		}
	}
	if _, err := os.Stat(logDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log directory %s: %v, want removed", logDir, err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// waitLog polls until p's log contains want.
func waitLog(t *testing.T, p *lab.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, _ := os.ReadFile(p.LogPath())
		if strings.Contains(string(log), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: log has no %q after 5 s: %q", p, want, log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func linkNames(links []netlink.Link) []string {
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}

func filepathDir(p string) string { return p[:strings.LastIndexByte(p, '/')] }

// TestCleanStale is not parallel: the Create of every other test removes the stale
// lab it fakes. Test binaries of other packages may still do so; the outcome checked
// is the same.
func TestCleanStale(t *testing.T) {
	live := lab.New(t, lab.Options{Nodes: 1})

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%s%d-beef-n1", lab.Prefix, dead.Process.Pid)
	manual := fmt.Sprintf("%sm-%d-n1", lab.Prefix, os.Getpid()) // unique per test run
	for _, name := range []string{stale, manual} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
	}
	t.Cleanup(func() {
		for _, name := range []string{stale, manual} {
			exec.Command("ip", "netns", "delete", name).Run()
		}
	})
	sleeper := exec.Command("ip", "netns", "exec", stale, "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	waitComm(t, sleeper.Process.Pid, "sleep") // `ip netns exec` entered the namespace and exec'd

	if err := lab.CleanStale(); err != nil {
		t.Fatalf("CleanStale: %v", err)
	}
	if got := namespaces(t, stale); len(got) > 0 {
		t.Errorf("stale namespace of dead pid %d still there: %v", dead.Process.Pid, got)
	}
	sleeper.Wait()
	if !gone(sleeper.Process.Pid) {
		t.Errorf("process %d in the stale namespace survived", sleeper.Process.Pid)
	}
	if got := namespaces(t, manual); len(got) != 1 {
		t.Errorf("manual namespace %s removed by CleanStale", manual)
	}
	if got := namespaces(t, live.Node(1).Name); len(got) != 1 {
		t.Errorf("namespace %s of a live lab removed by CleanStale", live.Node(1).Name)
	}
	reach(t, live.Node(1), live.Node(1)) // still working

	infos, err := lab.List()
	if err != nil {
		t.Fatal(err)
	}
	var foundManual bool
	for _, in := range infos {
		if in.ID == "m-"+strconv.Itoa(os.Getpid()) {
			foundManual = in.Manual() && !in.Stale()
		}
	}
	if !foundManual {
		t.Errorf("List = %+v, want the manual lab m-%d, not stale", infos, os.Getpid())
	}
	if err := lab.Remove("m-" + strconv.Itoa(os.Getpid())); err != nil {
		t.Errorf("Remove manual lab: %v", err)
	}
	if got := namespaces(t, manual); len(got) > 0 {
		t.Errorf("manual namespace still there after Remove: %v", got)
	}
}

func TestDo(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1, Client: true})
	n1, c := l.Node(1), l.Client()

	runtime.LockOSThread()
	before, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	var conn net.PacketConn
	err = n1.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		if !bytes.Equal(ifi.HardwareAddr, n1.MAC) {
			return fmt.Errorf("eth0 MAC inside Do = %v, want %v", ifi.HardwareAddr, n1.MAC)
		}
		conn, err = net.ListenPacket("udp", netip.AddrPortFrom(n1.Addr.Addr(), 0).String())
		return err
	})
	after, _ := netns.Get()
	runtime.UnlockOSThread()
	defer after.Close()
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	defer conn.Close()
	if !before.Equal(after) {
		t.Errorf("thread in %v after Do, want back in %v", after, before)
	}

	// The socket opened inside Do stays in n1: the client reaches it over the LAN.
	err = c.Do(func() error {
		out, err := net.Dial("udp", conn.LocalAddr().String())
		if err != nil {
			return err
		}
		defer out.Close()
		_, err = out.Write([]byte("hello"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 16)
	n, from, err := conn.ReadFrom(buf)
	if err != nil {
		t.Fatalf("read on %v in %s: %v", conn.LocalAddr(), n1.Name, err)
	}
	if got := string(buf[:n]); got != "hello" || from.(*net.UDPAddr).IP.String() != c.Addr.Addr().String() {
		t.Errorf("got %q from %v, want %q from %v", got, from, "hello", c.Addr.Addr())
	}

	if err := n1.Sysctl("net.ipv4.conf.eth0.promote_secondaries", "1"); err != nil {
		t.Fatal(err)
	}
	out, err := n1.Run(context.Background(), "cat", "/proc/sys/net/ipv4/conf/eth0/promote_secondaries")
	if err != nil || strings.TrimSpace(string(out)) != "1" {
		t.Errorf("promote_secondaries after Sysctl = %q, %v; want 1", out, err)
	}
}

func TestCapture(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1, Client: true})
	capture, err := l.Capture("icmp")
	if err != nil {
		t.Fatal(err)
	}
	reach(t, l.Client(), l.Node(1))
	capture.Stop(time.Second)
	out, err := exec.Command("tcpdump", "-n", "-r", capture.Path).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r %s: %v: %s", capture.Path, err, out)
	}
	for _, want := range []string{"198.18.0.2 > 198.18.0.101: ICMP echo request", "198.18.0.101 > 198.18.0.2: ICMP echo reply"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("capture has no %q:\n%s", want, out)
		}
	}
}

func TestStartWINS(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1, WINS: true})
	start := time.Now()
	w, err := l.StartWINS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nmbd answering after %v", time.Since(start))
	out, err := l.Node(1).Run(context.Background(), "nmblookup", "--configfile="+w.Config, "-U", "198.18.0.1", "--recursion", lab.WINSName)
	if err != nil {
		t.Fatal(err)
	}
	if want := "198.18.0.1 " + lab.WINSName + "<00>"; !strings.Contains(string(out), want) {
		t.Errorf("WINS query from node 1: %q, want %q", out, want)
	}
	if err := w.Stop(5 * time.Second); err != nil {
		t.Errorf("stop nmbd: %v", err)
	}
}

// TestStartSurvivesThreadExits checks that Pdeathsig does not kill a started process
// when the thread of the goroutine that called Start ends (a goroutine that exits
// locked to its thread ends it), as it would if Start forked from the caller's thread.
func TestStartSurvivesThreadExits(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1})
	var p *lab.Proc
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		p, err = l.Node(1).Start("sleep", "60")
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		t.Fatalf("%v exited when the thread that called Start ended: %v", p, p.Wait())
	case <-time.After(200 * time.Millisecond):
	}
	waitInNS(t, p.Pid(), l.Node(1).Name, "sleep")
}
