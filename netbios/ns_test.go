package netbios

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Kernel tests run in network namespaces named cdnbt-PID-N-ROLE that they create and
// delete, with addresses in 198.18.0.0/24 only.

var nsSeq atomic.Int32

type testNS struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
}

func newNS(t testing.TB, role string) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("kernel tests need root to create network namespaces (run the tests as root, as CI does)")
	}
	name := fmt.Sprintf("cdnbt-%d-%d-%s", os.Getpid(), nsSeq.Add(1), role)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatal(err)
	}
	n := &testNS{name: name, ns: ns}
	t.Cleanup(func() {
		n.killAll(t)
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	if n.h, err = netlink.NewHandleAt(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.h.Close)
	n.up(t, "lo")
	return n
}

// killAll stops what is left in the namespace (started by this test): SIGTERM, then
// SIGKILL, by pid.
func (n *testNS) killAll(t testing.TB) {
	for _, sig := range []os.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		out, _ := exec.Command("ip", "netns", "pids", n.name).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			return
		}
		for _, p := range pids {
			var pid int
			fmt.Sscan(p, &pid)
			if pr, err := os.FindProcess(pid); err == nil && pid != os.Getpid() {
				pr.Signal(sig)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (n *testNS) up(t testing.TB, link string) {
	t.Helper()
	l, err := n.h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
}

// addr adds prefix to link with a broadcast address (`ip addr add P brd + dev L`).
func (n *testNS) addr(t testing.TB, link, prefix string) {
	t.Helper()
	l, err := n.h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	a, err := netlink.ParseAddr(prefix)
	if err != nil {
		t.Fatal(err)
	}
	if ones, bits := a.Mask.Size(); ones < bits {
		bc := make(net.IP, 4)
		for i := range bc {
			bc[i] = a.IP.To4()[i] | ^a.Mask[i]
		}
		a.Broadcast = bc
	}
	if err := n.h.AddrAdd(l, a); err != nil {
		t.Fatalf("ip addr add %s dev %s in %s: %v", prefix, link, n.name, err)
	}
}

// link joins n and o with a veth pair named a (in n) and b (in o), both up.
func (n *testNS) link(t testing.TB, o *testNS, a, b string) {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a}, PeerName: b}
	if err := n.h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s/%s: %v", a, b, err)
	}
	pb, err := n.h.LinkByName(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.LinkSetNsFd(pb, int(o.ns)); err != nil {
		t.Fatal(err)
	}
	n.up(t, a)
	o.up(t, b)
}

// mac is the hardware address of link.
func (n *testNS) mac(t testing.TB, link string) net.HardwareAddr {
	t.Helper()
	l, err := n.h.LinkByName(link)
	if err != nil {
		t.Fatal(err)
	}
	return l.Attrs().HardwareAddr
}

// do runs fn on a thread inside the namespace; sockets it opens stay there.
func (n *testNS) do(t testing.TB, fn func() error) error {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic("cannot return to the original namespace: " + err.Error())
		}
	}()
	return fn()
}

// dial is Dial inside the namespace.
func (n *testNS) dial(t testing.TB, addr string) (net.PacketConn, error) {
	var c net.PacketConn
	err := n.do(t, func() (err error) {
		c, err = Dial(netip.MustParseAddr(addr))
		return err
	})
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// command returns cmd to be run inside the namespace.
func (n *testNS) command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}
