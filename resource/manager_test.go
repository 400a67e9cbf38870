package resource

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// linkState reads eth0's addresses and the route keys a check compares.
func linkState(tb testing.TB, n *testNS) ([]string, []string) {
	tb.Helper()
	k := kernel{h: n.h}
	l, err := k.link("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	ka, err := k.addrs(l)
	if err != nil {
		tb.Fatal(err)
	}
	rs, err := k.routes(l)
	if err != nil {
		tb.Fatal(err)
	}
	var as, routes []string
	for _, a := range ka {
		as = append(as, a.Prefix.String())
	}
	for rk := range routeKeys(rs) {
		if rk.dst.Addr().Is6() && rk.dst.Addr().IsLinkLocalUnicast() || rk.dst.Addr().IsMulticast() {
			continue
		}
		if rk.dst == netip.MustParsePrefix("fe80::/64") {
			continue
		}
		routes = append(routes, fmt.Sprintf("%v/%v", rk.dst, rk.local))
	}
	slices.Sort(as)
	slices.Sort(routes)
	return as, routes
}

// pollLinkState reads eth0 until it matches or a second passed: IPv6 local routes
// appear from a kernel workqueue shortly after the add.
func pollLinkState(tb testing.TB, n *testNS, wantA, wantR []string) ([]string, []string) {
	deadline := time.Now().Add(time.Second)
	for {
		gotA, gotR := linkState(tb, n)
		if slices.Equal(gotA, wantA) && slices.Equal(gotR, wantR) || time.Now().After(deadline) {
			return gotA, gotR
		}
		time.Sleep(time.Millisecond)
	}
}

// modelState is what eth0 must look like holding nodeAddrs and held.
func modelState(nodeAddrs, held []netip.Prefix) ([]string, []string) {
	var as []string
	routes := map[string]bool{}
	for _, p := range append(slices.Clone(nodeAddrs), held...) {
		as = append(as, p.String())
		host := netip.PrefixFrom(p.Addr(), p.Addr().BitLen())
		routes[fmt.Sprintf("%v/true", host)] = true
		if p.Bits() < p.Addr().BitLen() {
			routes[fmt.Sprintf("%v/false", p.Masked())] = true
		}
	}
	slices.Sort(as)
	return as, slices.Sorted(func(yield func(string) bool) {
		for r := range routes {
			if !yield(r) {
				return
			}
		}
	})
}

func addNodeAddr(tb testing.TB, n *testNS, p string) {
	tb.Helper()
	l, err := n.h.LinkByName("eth0")
	if err != nil {
		tb.Fatal(err)
	}
	a := toNetlink(Address{Prefix: netip.MustParsePrefix(p), Interface: "eth0"}, 0)
	a.Flags, a.PreferedLft, a.ValidLft = unix.IFA_F_NODAD, 0, 0
	if err := n.h.AddrAdd(l, a); err != nil {
		tb.Fatalf("add node address %s: %v", p, err)
	}
}

func apply(tb testing.TB, m *Manager, want ...string) Result {
	tb.Helper()
	res, err := m.Apply(context.Background(), addrs(want...))
	if err != nil {
		tb.Fatalf("Apply(%v): %v", want, err)
	}
	for a, err := range res.Failed {
		tb.Fatalf("Apply(%v): %s failed: %v", want, a, err)
	}
	return res
}

// The exact Q287032 case: .10, .11, .12 in a subnet with no node address; removing
// .10 (the primary) must leave .11 and .12 and their routes.
func TestQ287032RemovePrimaryKeepsOthers(t *testing.T) {
	n := newTestNS(t)
	m := n.manager(t, t.TempDir())
	apply(t, m, "198.19.1.10/24", "198.19.1.11/24", "198.19.1.12/24")
	apply(t, m, "198.19.1.11/24", "198.19.1.12/24")
	gotA, gotR := linkState(t, n)
	wantA, wantR := modelState(nil, []netip.Prefix{netip.MustParsePrefix("198.19.1.11/24"), netip.MustParsePrefix("198.19.1.12/24")})
	if !slices.Equal(gotA, wantA) || !slices.Equal(gotR, wantR) {
		t.Fatalf("after removing .10: got addrs %v routes %v, want addrs %v routes %v", gotA, gotR, wantA, wantR)
	}
}

// TestChurn applies random sequences of adds and removes over four subnets (two with
// a node address, two without, one of them IPv6) and checks after every step that
// the kernel's addresses and routes equal the model's.
func TestChurn(t *testing.T) {
	seed := uint64(20261121)
	steps := 600
	t.Logf("seed %d, %d steps", seed, steps)
	rng := rand.New(rand.NewPCG(seed, seed))
	n := newTestNS(t)
	nodeAddrs := []netip.Prefix{netip.MustParsePrefix("198.18.0.101/16"), netip.MustParsePrefix("2001:2::101/64")}
	for _, p := range nodeAddrs {
		addNodeAddr(t, n, p.String())
	}
	var pool []netip.Prefix
	for i := 10; i < 18; i++ {
		pool = append(pool,
			netip.MustParsePrefix(fmt.Sprintf("198.18.1.%d/16", i)),    // subnet with a node address
			netip.MustParsePrefix(fmt.Sprintf("198.19.2.%d/24", i)),    // no node address
			netip.MustParsePrefix(fmt.Sprintf("198.19.3.%d/24", i)),    // no node address
			netip.MustParsePrefix(fmt.Sprintf("2001:2::%x/64", i)),     // IPv6 with a node address
			netip.MustParsePrefix(fmt.Sprintf("2001:2:0:7::%x/64", i)), // IPv6 without
		)
	}
	m := n.manager(t, t.TempDir())
	held := map[netip.Prefix]bool{}
	for step := 0; step < steps; step++ {
		// Change 1-3 addresses per step, in one batch.
		for c := 1 + rng.IntN(3); c > 0; c-- {
			p := pool[rng.IntN(len(pool))]
			held[p] = !held[p]
		}
		var want []Address
		var heldList []netip.Prefix
		for p, on := range held {
			if on {
				want = append(want, Address{Prefix: p, Interface: "eth0"})
				heldList = append(heldList, p)
			}
		}
		res, err := m.Apply(context.Background(), want)
		if err != nil || len(res.Failed) > 0 {
			t.Fatalf("seed %d step %d: Apply: %v %v", seed, step, err, res.Failed)
		}
		if len(res.Drift) > 0 {
			t.Fatalf("seed %d step %d: read-back found drift after a clean batch: %v (plan remove %v add %v)", seed, step, res.Drift, res.Plan.Remove, res.Plan.Add)
		}
		wantA, wantR := modelState(nodeAddrs, heldList)
		gotA, gotR := pollLinkState(t, n, wantA, wantR)
		if !slices.Equal(gotA, wantA) {
			t.Fatalf("seed %d step %d (plan %s): addresses\n got %v\nwant %v", seed, step, res.Plan, gotA, wantA)
		}
		if !slices.Equal(gotR, wantR) {
			t.Fatalf("seed %d step %d (plan %s): routes\n got %v\nwant %v", seed, step, res.Plan, gotR, wantR)
		}
	}
}

func TestDriftRepair(t *testing.T) {
	n := newTestNS(t)
	addNodeAddr(t, n, "198.18.0.101/16")
	m := n.manager(t, t.TempDir())
	apply(t, m, "198.19.5.10/24", "198.19.5.11/24")
	l, _ := n.h.LinkByName("eth0")

	// Someone deletes a cluster address by hand.
	if err := n.h.AddrDel(l, toNetlink(addr("198.19.5.11/24"), 0)); err != nil {
		t.Fatal(err)
	}
	// And the prefix route of the other subnet.
	dst := &net.IPNet{IP: net.ParseIP("198.19.5.0").To4(), Mask: net.CIDRMask(24, 32)}
	if err := n.h.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Scope: netlink.SCOPE_LINK}); err != nil {
		t.Fatal(err)
	}
	// The same set again is a no-op that reads nothing: the manager relies on being
	// told (the agent's deletion watch calls Invalidate).
	if res := apply(t, m, "198.19.5.10/24", "198.19.5.11/24"); !res.Plan.Empty() || len(res.Drift) > 0 {
		t.Fatalf("same set, no Invalidate: got plan %v drift %v, want a no-op", res.Plan, res.Drift)
	}
	m.Invalidate()
	res := apply(t, m, "198.19.5.10/24", "198.19.5.11/24")
	var kinds []string
	for _, d := range res.Drift {
		kinds = append(kinds, d.Kind.String())
	}
	if len(res.Plan.Add) != 1 {
		t.Errorf("plan after manual delete: got %v, want one add", res.Plan)
	}
	gotA, gotR := linkState(t, n)
	wantA, wantR := modelState([]netip.Prefix{netip.MustParsePrefix("198.18.0.101/16")},
		[]netip.Prefix{netip.MustParsePrefix("198.19.5.10/24"), netip.MustParsePrefix("198.19.5.11/24")})
	if !slices.Equal(gotA, wantA) || !slices.Equal(gotR, wantR) {
		t.Fatalf("after repair (drift %v): got %v %v, want %v %v", kinds, gotA, gotR, wantA, wantR)
	}
}

func TestRestartRemovesStaleOnly(t *testing.T) {
	n := newTestNS(t)
	addNodeAddr(t, n, "198.18.0.101/16")
	dir := t.TempDir()
	m := n.manager(t, dir)
	apply(t, m, "198.18.1.10/16", "198.19.6.10/24")
	// A new manager over the same data dir (the agent restarted after kill -9).
	m2 := n.manager(t, dir)
	if got := len(m2.Recorded()); got != 2 {
		t.Fatalf("recorded after restart: got %d, want 2", got)
	}
	if _, err := m2.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	gotA, _ := linkState(t, n)
	if want := []string{"198.18.0.101/16"}; !slices.Equal(gotA, want) {
		t.Fatalf("after cleanup: got %v, want %v", gotA, want)
	}
}

func TestForeignAddressNotAdopted(t *testing.T) {
	n := newTestNS(t)
	addNodeAddr(t, n, "198.18.0.101/16")
	m := n.manager(t, t.TempDir())
	res, err := m.Apply(context.Background(), addrs("198.18.0.101/16"))
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed[addr("198.18.0.101/16")] == nil {
		t.Fatalf("wanting the node's own address: got no failure, want one")
	}
	if _, err := m.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	gotA, _ := linkState(t, n)
	if want := []string{"198.18.0.101/16"}; !slices.Equal(gotA, want) {
		t.Fatalf("node address touched: got %v, want %v", gotA, want)
	}
}

func TestUnknownInterface(t *testing.T) {
	n := newTestNS(t)
	m := n.manager(t, t.TempDir())
	a := Address{Prefix: netip.MustParsePrefix("198.19.1.10/24"), Interface: "nope0"}
	res, err := m.Apply(context.Background(), []Address{a})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Failed[a]; got == nil || !errorsIs(got, ErrNoInterface) {
		t.Fatalf("unknown interface: got %v, want ErrNoInterface", got)
	}
}

// Recorded addresses that vanished from the kernel (the fencing companion removed
// them) are forgotten, and adding them again records each once.
func TestVanishedRecordedNotDuplicated(t *testing.T) {
	n := newTestNS(t)
	addNodeAddr(t, n, "198.18.0.101/16")
	dir := t.TempDir()
	apply(t, n.manager(t, dir), "198.18.1.10/16", "198.19.8.10/24")
	if _, err := RemoveRecorded(n.h, dir); err != nil {
		t.Fatal(err)
	}
	m := n.manager(t, dir)
	if _, err := m.Cleanup(context.Background()); err != nil {
		t.Fatal(err)
	}
	apply(t, m, "198.18.1.10/16", "198.19.8.10/24")
	if got := m.Recorded(); len(got) != 2 {
		t.Fatalf("record after cleanup and re-add: got %v, want 2 entries", got)
	}
	if got := n.manager(t, dir).Recorded(); len(got) != 2 {
		t.Fatalf("record on disk: got %v, want 2 entries", got)
	}
}
