package announce

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testLink is the name of the veth end in each test namespace. It is not a
// name the host uses, so code that ran in the wrong namespace by mistake
// would fail to find it rather than send on a host interface.
const testLink = "cdann0"

// testNode is one end of a veth pair in its own throwaway network namespace.
type testNode struct {
	name string
	ns   netns.NsHandle
	h    *netlink.Handle
	mac  net.HardwareAddr
	idx  int // ifindex of testLink
}

var nsSeq atomic.Int64

// newPair creates namespaces cdann-<pid>-<n>-a and -b joined by a veth pair
// (testLink on both sides, up, carrier on) and deletes them when the test
// ends. It needs root (CAP_NET_ADMIN, CAP_NET_RAW); CI runs as root.
func newPair(t testing.TB) (a, b *testNode) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("kernel tests need root to create network namespaces and packet sockets (run `go test` as root, as CI does)")
	}
	n := nsSeq.Add(1)
	a = newNode(t, fmt.Sprintf("cdann-%d-%d-a", os.Getpid(), n))
	b = newNode(t, fmt.Sprintf("cdann-%d-%d-b", os.Getpid(), n))
	linkPair(t, a, b)
	return a, b
}

// linkPair joins a and b with a veth pair, testLink on both sides, and waits
// for carrier. Equals `ip link add cdann0 type veth peer name cdann0 netns B`.
func linkPair(t testing.TB, a, b *testNode) {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: testLink}, PeerName: testLink, PeerNamespace: netlink.NsFd(int(b.ns))}
	if err := a.h.LinkAdd(veth); err != nil {
		t.Fatalf("add veth %s in %s, peer in %s: %v", testLink, a.name, b.name, err)
	}
	for _, nd := range []*testNode{a, b} {
		nd.up(t)
	}
	for _, nd := range []*testNode{a, b} {
		nd.waitRunning(t)
	}
}

func newNode(t testing.TB, name string) *testNode {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name) // also moves this thread into it
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	if err := netns.Set(orig); err != nil {
		t.Fatalf("return from namespace %s: %v", name, err) // the thread dies with the test
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return &testNode{name: name, ns: ns, h: h}
}

func (n *testNode) up(t testing.TB) {
	t.Helper()
	for _, name := range []string{"lo", testLink} {
		l, err := n.h.LinkByName(name)
		if err != nil {
			t.Fatalf("%s: %v", n.name, err)
		}
		if err := n.h.LinkSetUp(l); err != nil {
			t.Fatalf("%s: set %s up: %v", n.name, name, err)
		}
		if name == testLink {
			n.mac, n.idx = l.Attrs().HardwareAddr, l.Attrs().Index
		}
	}
}

func (n *testNode) waitRunning(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, err := n.h.LinkByName(testLink)
		if err != nil {
			t.Fatal(err)
		}
		if l.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in %s has no carrier after 5 s", testLink, n.name)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// do runs fn on an OS thread that sits in n's namespace. Sockets fn opens stay
// bound to that namespace after do returns. Goroutines fn starts do not
// inherit the namespace.
func (n *testNode) do(fn func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	if err := netns.Set(n.ns); err != nil {
		return fmt.Errorf("enter %s: %w", n.name, err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime then ends it with the
			// goroutine instead of reusing it in the wrong namespace.
			runtime.LockOSThread()
		}
	}()
	return fn()
}

// addAddr adds prefix to testLink, with IFA_F_NODAD for IPv6 so that it
// answers at once (as clusterd adds its addresses). Equals
// `ip addr add PREFIX dev cdann0 nodad`.
func (n *testNode) addAddr(t testing.TB, prefix string) {
	t.Helper()
	p := netip.MustParsePrefix(prefix)
	a := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	l, err := n.h.LinkByIndex(n.idx)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.h.AddrAdd(l, a); err != nil {
		t.Fatalf("%s: add %s to %s: %v", n.name, prefix, testLink, err)
	}
}

// setNeigh installs a stale neighbour entry, as a receiver has for an address
// that used to be elsewhere. Equals `ip neigh replace ADDR lladdr MAC dev cdann0 nud stale`.
func (n *testNode) setNeigh(t testing.TB, addr netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	err := n.h.NeighSet(&netlink.Neigh{LinkIndex: n.idx, Family: fam, State: netlink.NUD_STALE, IP: addr.AsSlice(), HardwareAddr: mac})
	if err != nil {
		t.Fatalf("%s: neighbour %s -> %s: %v", n.name, addr, mac, err)
	}
}

// neigh returns the link-layer address n's kernel has for addr, or nil.
func (n *testNode) neigh(t testing.TB, addr netip.Addr) net.HardwareAddr {
	t.Helper()
	fam := netlink.FAMILY_V4
	if addr.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := n.h.NeighList(n.idx, fam)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ns {
		if ip, ok := netip.AddrFromSlice(e.IP); ok && ip.Unmap() == addr {
			return e.HardwareAddr
		}
	}
	return nil
}
