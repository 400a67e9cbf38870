package resource

import (
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// testNS is a throwaway network namespace with a veth pair eth0/peer0 inside it.
type testNS struct {
	ns netns.NsHandle
	h  *netlink.Handle
}

// newTestNS creates the namespace and deletes it when the test ends. It needs root
// (CAP_NET_ADMIN); CI runs as root.
func newTestNS(tb testing.TB) *testNS {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("kernel tests need root to create network namespaces (run `make test` as root, as CI does)")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		tb.Fatal(err)
	}
	defer orig.Close()
	name := fmt.Sprintf("cdres-%d-%d", os.Getpid(), nsCounter.next())
	ns, err := netns.NewNamed(name)
	if err != nil {
		tb.Fatalf("create namespace %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			tb.Errorf("delete namespace %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(h.Close)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}
	if err := h.LinkAdd(veth); err != nil {
		tb.Fatalf("add veth: %v", err)
	}
	for _, n := range []string{"lo", "eth0", "peer0"} {
		l, err := h.LinkByName(n)
		if err != nil {
			tb.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			tb.Fatal(err)
		}
	}
	// Wait for carrier: IPv6 brings addresses (and their local routes) up only on a
	// running link.
	for i := 0; ; i++ {
		l, err := h.LinkByName("eth0")
		if err != nil {
			tb.Fatal(err)
		}
		if l.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
			break
		}
		if i > 500 {
			tb.Fatalf("eth0 in %s has no carrier after 5 s", name)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &testNS{ns: ns, h: h}
}

// sysctl writes /proc/sys/NAME inside the namespace.
func (t *testNS) sysctl(name, value string) error {
	return t.do(func() error { return writeSysctl(name, value) })
}

// do runs fn on a thread that sits in the namespace.
func (t *testNS) do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(t.ns); err != nil {
		return err
	}
	defer netns.Set(orig)
	return fn()
}

func (t *testNS) manager(tb testing.TB, dir string) *Manager {
	tb.Helper()
	m, err := New(Config{Handle: t.h, DataDir: dir, SetSysctl: t.sysctl})
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

type counter struct{ n int }

func (c *counter) next() int { c.n++; return c.n }

var nsCounter counter
