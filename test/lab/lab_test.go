package lab_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/test/lab"
)

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
