package resource

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

func thousand() []Address {
	out := make([]Address, 0, 1000)
	for i := 0; i < 1000; i++ {
		p := netip.MustParsePrefix(fmt.Sprintf("198.18.%d.%d/16", 10+i/250, 1+i%250))
		out = append(out, Address{Prefix: p, Interface: "eth0"})
	}
	return out
}

// BenchmarkOnline1000 times bringing 1,000 addresses online on one interface in one
// batch (with read-back), and BenchmarkOffline1000 taking them all off again.
// Target (issue 2): ≤ 1 s each.
func BenchmarkOnline1000(b *testing.B) { benchBatch(b, true) }

func BenchmarkOffline1000(b *testing.B) { benchBatch(b, false) }

func benchBatch(b *testing.B, online bool) {
	n := newTestNS(b)
	addNodeAddr(b, n, "198.18.0.101/16")
	m := n.manager(b, b.TempDir())
	all := thousand()
	ctx := context.Background()
	for b.Loop() {
		if !online {
			b.StopTimer()
		}
		if _, err := m.Apply(ctx, all); err != nil {
			b.Fatal(err)
		}
		if online {
			b.StopTimer()
		} else {
			b.StartTimer()
		}
		if _, err := m.Apply(ctx, nil); err != nil {
			b.Fatal(err)
		}
		if online {
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(len(all))*float64(b.N)/b.Elapsed().Seconds(), "addrs/s")
}

// BenchmarkNetlinkAddDel measures raw netlink operations per second (one add and
// one delete of a secondary per iteration).
func BenchmarkNetlinkAddDel(b *testing.B) {
	n := newTestNS(b)
	addNodeAddr(b, n, "198.18.0.101/16")
	k := kernel{h: n.h}
	l, err := k.link("eth0")
	if err != nil {
		b.Fatal(err)
	}
	a := Address{Prefix: netip.MustParsePrefix("198.18.1.10/16"), Interface: "eth0"}
	for b.Loop() {
		if err := k.add(l, a, 0); err != nil {
			b.Fatal(err)
		}
		if err := k.del(l, a); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(2*float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
