package cluster

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/vishvananda/netlink"
)

var (
	t0   = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	vipA = netip.MustParseAddr("192.0.2.10")
	vipB = netip.MustParseAddr("192.0.2.11")
)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func add(ms int, node string) AddrEvent {
	return AddrEvent{At: at(ms), Node: node, VIP: vipA, Added: true}
}
func del(ms int, node string) AddrEvent { return AddrEvent{At: at(ms), Node: node, VIP: vipA} }

// summary is the part of a VIPReport the table compares.
type summary struct {
	intervals    int
	overlap      time.Duration
	spans        int
	spanNodes    string // nodes of the first span
	holders      string
	leftBehind   string
	rounds       int
	doubleRounds int
	answerers    string
}

func summarise(v VIPReport) summary {
	s := summary{
		intervals: len(v.Intervals), overlap: v.Overlap, spans: len(v.Overlaps),
		holders: strings.Join(v.Holders, ","), leftBehind: strings.Join(v.LeftBehind, ","),
		rounds: v.Rounds, doubleRounds: v.DoubleRounds, answerers: strings.Join(v.Answerers, ","),
	}
	if len(v.Overlaps) > 0 {
		s.spanNodes = strings.Join(v.Overlaps[0].Nodes, ",")
	}
	return s
}

func TestRecordingReport(t *testing.T) {
	ms := time.Millisecond
	macs := map[string]string{"02:00:c6:12:00:65": "n1", "02:00:c6:12:00:66": "n2"}
	tests := []struct {
		name   string
		seeds  []AddrEvent
		events []AddrEvent
		marks  []Mark
		arp    []Reply
		end    int
		owner  string
		want   summary
	}{{
		name:   "clean handover",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{del(100, "n1"), add(100, "n2")},
		end:    300, owner: "n2",
		want: summary{intervals: 2, holders: "n2"},
	}, {
		name:   "add before delete overlaps",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{add(100, "n2"), del(130, "n1")},
		end:    300, owner: "n2",
		want: summary{intervals: 2, overlap: 30 * ms, spans: 1, spanNodes: "n1,n2", holders: "n2"},
	}, {
		name:   "refresh of a held address does not split it",
		events: []AddrEvent{add(0, "n1"), add(50, "n1"), add(60, "n2"), del(100, "n1"), del(200, "n2")},
		end:    300,
		want:   summary{intervals: 2, overlap: 40 * ms, spans: 1, spanNodes: "n1,n2"},
	}, {
		name:   "delete of an address not held is ignored",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{del(10, "n2")},
		end:    100, owner: "n1",
		want: summary{intervals: 1, holders: "n1"},
	}, {
		name:   "dead holder is not a second holder but is left behind",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{add(100, "n2")},
		marks:  []Mark{{At: at(50), Node: "n1", Dead: true}},
		end:    300, owner: "n2",
		want: summary{intervals: 2, holders: "n1,n2", leftBehind: "n1"},
	}, {
		name:   "revived holder counts again",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{add(100, "n2")},
		marks:  []Mark{{At: at(50), Node: "n1", Dead: true}, {At: at(200), Node: "n1"}},
		end:    300, owner: "n2",
		want: summary{intervals: 2, overlap: 100 * ms, spans: 1, spanNodes: "n1,n2", holders: "n1,n2", leftBehind: "n1"},
	}, {
		name:   "death in the middle of an overlap cuts it",
		events: []AddrEvent{add(0, "n1"), add(10, "n2"), del(100, "n2")},
		marks:  []Mark{{At: at(40), Node: "n1", Dead: true}, {At: at(60), Node: "n1"}},
		end:    100, owner: "n1",
		want: summary{intervals: 2, overlap: 70 * ms, spans: 2, spanNodes: "n1,n2", holders: "n1"},
	}, {
		name:   "three holders count once",
		events: []AddrEvent{add(0, "n1"), add(50, "n2"), add(60, "n3"), del(80, "n3"), del(100, "n1"), del(150, "n2")},
		end:    200,
		want:   summary{intervals: 3, overlap: 50 * ms, spans: 1, spanNodes: "n1,n2,n3"},
	}, {
		name:   "touching intervals do not overlap",
		events: []AddrEvent{add(0, "n1"), del(100, "n1"), add(100, "n2"), del(200, "n2")},
		end:    300,
		want:   summary{intervals: 2},
	}, {
		name:   "simultaneous events in any order",
		events: []AddrEvent{add(100, "n2"), del(100, "n1"), add(0, "n1")},
		end:    300, owner: "n2",
		want: summary{intervals: 2, holders: "n2"},
	}, {
		name:   "open at the end on two nodes",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{add(10, "n2")},
		end:    100, owner: "n2",
		want: summary{intervals: 2, overlap: 90 * ms, spans: 1, spanNodes: "n1,n2", holders: "n1,n2", leftBehind: "n1"},
	}, {
		name:  "held with no owner is left behind",
		seeds: []AddrEvent{add(0, "n3")},
		end:   100,
		want:  summary{intervals: 1, holders: "n3", leftBehind: "n3"},
	}, {
		name:   "other addresses are ignored",
		seeds:  []AddrEvent{add(0, "n1")},
		events: []AddrEvent{{At: at(10), Node: "n2", VIP: vipB, Added: true}},
		end:    100, owner: "n1",
		want: summary{intervals: 1, holders: "n1"},
	}, {
		name:  "ARP rounds answered by two MACs",
		seeds: []AddrEvent{add(0, "n1")},
		arp: []Reply{
			{At: at(1), Round: 1, MAC: "02:00:c6:12:00:65"},
			{At: at(6), Round: 2, MAC: "02:00:c6:12:00:65"},
			{At: at(6), Round: 2, MAC: "02:00:c6:12:00:66"},
			{At: at(11), Round: 3, MAC: "02:00:c6:12:00:66"},
			{At: at(12), Round: 3, MAC: "02:00:c6:12:00:66"},
			{At: at(16), Round: 4, MAC: "02:00:00:00:00:09"},
		},
		end: 100, owner: "n1",
		want: summary{intervals: 1, holders: "n1", rounds: 4, doubleRounds: 1, answerers: "02:00:00:00:00:09,n1,n2"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := Recording{Start: t0, VIPs: []netip.Addr{vipA, vipB}, Seeds: tt.seeds, Events: tt.events, Marks: tt.marks,
				Replies: map[netip.Addr][]Reply{vipA: tt.arp}, MACs: macs}
			owners := map[netip.Addr]string{}
			if tt.owner != "" {
				owners[vipA] = tt.owner
			}
			rep := rec.Report(at(tt.end), owners)
			if len(rep.VIPs) != 2 || rep.VIPs[0].VIP != vipA {
				t.Fatalf("report covers %+v, want %v then %v", rep.VIPs, vipA, vipB)
			}
			if got := summarise(rep.VIPs[0]); got != tt.want {
				t.Errorf("report of %s:\ngot  %+v\nwant %+v\n%s", vipA, got, tt.want, rep)
			}
		})
	}
}

func TestReportErr(t *testing.T) {
	clean := Recording{Start: t0, VIPs: []netip.Addr{vipA}, Seeds: []AddrEvent{add(0, "n1")}}
	if err := clean.Report(at(100), map[netip.Addr]string{vipA: "n1"}).Err(); err != nil {
		t.Errorf("clean recording: got %v, want nil", err)
	}
	double := Recording{Start: t0, VIPs: []netip.Addr{vipA}, Seeds: []AddrEvent{add(0, "n1")}, Events: []AddrEvent{add(20, "n2")}}
	err := double.Report(at(100), map[netip.Addr]string{vipA: "n2"}).Err()
	if err == nil || !strings.Contains(err.Error(), "two live nodes for 80ms") || !strings.Contains(err.Error(), "left behind on [n1]") {
		t.Errorf("two holders, n1 left behind: got %v", err)
	}
}

// TestRecorderKernelOverlap adds a cluster address in two node namespaces with
// overlapping timing and checks that the recorder measures the overlap in the kernel
// and on the wire, and the address left on the second node.
func TestRecorderKernelOverlap(t *testing.T) {
	l := lab.New(t, lab.Options{Nodes: 2, Client: true})
	vip := netip.MustParseAddr("198.18.1.10")
	seeded := netip.MustParseAddr("198.18.1.11")
	n1, n2 := l.Node(1), l.Node(2)
	addr := func(h *lab.Host, ip netip.Addr, on bool) (before, after time.Time) {
		t.Helper()
		nh, err := h.Handle()
		if err != nil {
			t.Fatal(err)
		}
		defer nh.Close()
		link, err := nh.LinkByName(h.Link)
		if err != nil {
			t.Fatal(err)
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(16, 32)}}
		before = time.Now()
		if on {
			err = nh.AddrAdd(link, a)
		} else {
			err = nh.AddrDel(link, a)
		}
		after = time.Now()
		if err != nil {
			t.Fatalf("address %s on %s up=%v: %v", ip, h.Name, on, err)
		}
		return before, after
	}
	addr(n2, seeded, true) // present before the recorder starts: seeded

	rec, err := NewRecorder(l, []netip.Addr{vip, seeded})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- rec.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("recorder: %v", err)
		}
	}()
	select {
	case <-rec.Ready():
	case err := <-errc:
		t.Fatalf("recorder did not start: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("recorder not ready after 10s")
	}

	addr(n1, vip, true)
	time.Sleep(50 * time.Millisecond) // n1 alone
	add2Before, add2After := addr(n2, vip, true)
	time.Sleep(40 * time.Millisecond) // both hold it: the overlap under test
	del1Before, del1After := addr(n1, vip, false)

	// Wait until all three events arrived and the prober saw n2 alone again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := rec.Recording()
		replies := rec.Replies[vip]
		if len(rec.Events) >= 3 && len(replies) > 0 && replies[len(replies)-1].At.After(del1After.Add(20*time.Millisecond)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("recorder saw %d events and %d ARP replies within 5s: %+v", len(rec.Events), len(replies), rec.Events)
		}
		time.Sleep(5 * time.Millisecond)
	}
	rep := rec.Report(map[netip.Addr]string{vip: "n2"})
	t.Logf("report:\n%s", rep)
	v, s := rep.VIPs[0], rep.VIPs[1]

	// The kernel overlap lies between what the calls bound it to, give or take the
	// delivery latency of a netlink message.
	const slack = 5 * time.Millisecond
	lo, hi := del1Before.Sub(add2After)-slack, del1After.Sub(add2Before)+slack
	if v.Overlap < lo || v.Overlap > hi {
		t.Errorf("kernel overlap of %s: got %v, want between %v and %v", vip, v.Overlap, lo, hi)
	}
	if len(v.Overlaps) != 1 || !slices.Equal(v.Overlaps[0].Nodes, []string{"n1", "n2"}) {
		t.Errorf("overlap spans of %s: got %+v, want one by n1 and n2", vip, v.Overlaps)
	}
	if len(v.Intervals) != 2 || v.Intervals[0].Node != "n1" || v.Intervals[0].Open || v.Intervals[1].Node != "n2" || !v.Intervals[1].Open {
		t.Errorf("intervals of %s: got %+v, want n1 closed then n2 open", vip, v.Intervals)
	}
	// 40 ms of two holders at a 5 ms probe period: both kernels answer several rounds.
	if v.DoubleRounds < 2 || !slices.Equal(v.Answerers, []string{"n1", "n2"}) {
		t.Errorf("ARP for %s: got %d double rounds by %v, want ≥ 2 by n1 and n2", vip, v.DoubleRounds, v.Answerers)
	}
	if len(v.LeftBehind) != 0 || !slices.Equal(v.Holders, []string{"n2"}) {
		t.Errorf("end state of %s: holders %v, left behind %v; want n2 only, nothing left", vip, v.Holders, v.LeftBehind)
	}
	// The address added before Run is seeded from the start and, with no owner, left behind.
	if len(s.Intervals) != 1 || !s.Intervals[0].From.Equal(rep.Start) || !slices.Equal(s.LeftBehind, []string{"n2"}) {
		t.Errorf("seeded %s: intervals %+v, left behind %v; want one from the start on n2, left behind", seeded, s.Intervals, s.LeftBehind)
	}
	// Marking n1 dead before the overlap removes it from the kernel count, not from ARP.
	rec.Dead(n1, add2Before.Add(-time.Millisecond))
	if v := rec.Report(map[netip.Addr]string{vip: "n2"}).VIPs[0]; v.Overlap != 0 || v.DoubleRounds < 2 {
		t.Errorf("with n1 dead: overlap %v, double rounds %d; want 0 and unchanged", v.Overlap, v.DoubleRounds)
	}
}
