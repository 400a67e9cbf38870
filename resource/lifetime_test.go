package resource

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// An address not refreshed within its lifetime is removed by the kernel itself; one
// that is refreshed stays.
func TestLifetimeExpiresUnlessRefreshed(t *testing.T) {
	n := newTestNS(t)
	addNodeAddr(t, n, "198.18.0.101/16")
	m, err := New(Config{Handle: n.h, DataDir: t.TempDir(), SetSysctl: n.sysctl, Lifetime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	apply(t, m, "198.18.1.10/16", "2001:2::10/64")
	l, _ := n.h.LinkByName("eth0")
	as, _ := n.h.AddrList(l, netlink.FAMILY_ALL)
	for _, a := range as {
		if a.IP.String() == "198.18.1.10" && a.ValidLft > 1 {
			t.Fatalf("valid_lft of 198.18.1.10: got %d, want ≤ 1", a.ValidLft)
		}
	}
	// Refresh for 2.5 s: the addresses stay.
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(300 * time.Millisecond) {
		if err := m.Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := linkState(t, n)
	if want := []string{"198.18.0.101/16", "198.18.1.10/16", "2001:2::10/64"}; !slices.Equal(got, want) {
		t.Fatalf("while refreshed: got %v, want %v", got, want)
	}
	// Stop refreshing: gone within about a second (the kernel checks once a second).
	start := time.Now()
	for {
		got, _ = linkState(t, n)
		if slices.Equal(got, []string{"198.18.0.101/16"}) {
			break
		}
		if time.Since(start) > 3*time.Second {
			t.Fatalf("not refreshed for 3 s, addresses still %v", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("unrefreshed addresses gone %s after the last refresh", time.Since(start))
}

func TestRemoveRecordedLeavesOthers(t *testing.T) {
	n := newTestNS(t)
	addNodeAddr(t, n, "198.18.0.101/16")
	dir := t.TempDir()
	m := n.manager(t, dir)
	apply(t, m, "198.18.1.10/16", "198.19.3.10/24", "198.19.3.11/24", "2001:2::10/64")
	removed, err := RemoveRecorded(n.h, dir)
	if err != nil {
		t.Fatal(err)
	}
	if removed != 4 {
		t.Errorf("removed %d, want 4", removed)
	}
	got, _ := linkState(t, n)
	if want := []string{"198.18.0.101/16"}; !slices.Equal(got, want) {
		t.Fatalf("after RemoveRecorded: got %v, want %v", got, want)
	}
	if rec := n.manager(t, dir).Recorded(); len(rec) != 4 {
		t.Fatalf("RemoveRecorded rewrote the record: %v", rec)
	}
}
