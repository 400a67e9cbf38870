package resource

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestDeletionWatch: adding and refreshing addresses wakes nobody (the filter
// drops them in the kernel); deleting an address or a route does.
func TestDeletionWatch(t *testing.T) {
	n := newTestNS(t)
	var w *DeletionWatch
	if err := n.do(func() (err error) { w, err = NewDeletionWatch(); return err }); err != nil {
		t.Fatal(err)
	}
	woke := make(chan struct{}, 1000)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx, func() { woke <- struct{}{} }) }()
	defer func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Run after cancel: %v, want context.Canceled", err)
		}
	}()

	link, err := n.h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	addr := func(i int) *netlink.Addr {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 7, byte(i)}), 24)
		a := toNetlink(Address{Prefix: p, Interface: "eth0"}, 30*time.Second)
		a.Flags = unix.IFA_F_NODAD
		return a
	}
	for i := 1; i <= 50; i++ {
		if err := n.h.AddrAdd(link, addr(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 50; i++ { // a lifetime refresh
		if err := n.h.AddrReplace(link, addr(i)); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-woke:
		t.Fatal("woken by address additions or refreshes; want only deletions")
	case <-time.After(200 * time.Millisecond):
	}

	if err := n.h.AddrDel(link, addr(7)); err != nil {
		t.Fatal(err)
	}
	waitWoken(t, woke, "address deletion")
	drain(woke)

	// The prefix route of 198.18.7.0/24 by itself (the address stays).
	routes, err := n.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{LinkIndex: link.Attrs().Index}, netlink.RT_FILTER_OIF)
	if err != nil {
		t.Fatal(err)
	}
	var prefix *netlink.Route
	for i, r := range routes {
		if r.Dst != nil && r.Dst.String() == "198.18.7.0/24" {
			prefix = &routes[i]
		}
	}
	if prefix == nil {
		t.Fatalf("no prefix route 198.18.7.0/24 among %v", routes)
	}
	if err := n.h.RouteDel(prefix); err != nil {
		t.Fatal(err)
	}
	waitWoken(t, woke, "route deletion")
}

func waitWoken(t *testing.T, woke <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-woke:
	case <-time.After(2 * time.Second):
		t.Fatalf("not woken within 2 s of an %s", what)
	}
}

func drain(c <-chan struct{}) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func TestDeletionFilterJumps(t *testing.T) {
	prog := deletionFilter()
	accept := len(prog) - 1
	if prog[accept].K == 0 || prog[accept-1].K != 0 {
		t.Fatalf("want ... drop, accept at the end; got %+v", prog)
	}
	for i := 1; i <= len(deletionTypes); i++ {
		if got := i + 1 + int(prog[i].Jt); got != accept {
			t.Errorf("test %d jumps to %d on a match, want the accept at %d", i, got, accept)
		}
	}
}
