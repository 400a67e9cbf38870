package agent

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/clusterd/clusterd/resource"
)

func TestSelfProbeBatchCoversEveryAddressOncePerPeriod(t *testing.T) {
	mk := func(n int) []resource.Address {
		var out []resource.Address
		for i := range n {
			link := "eth0"
			if i%3 == 0 {
				link = "eth1"
			}
			out = append(out, resource.Address{Prefix: netip.MustParsePrefix(fmt.Sprintf("192.0.2.%d/24", i%250+1)), Interface: link})
		}
		return out
	}
	for _, tc := range []struct {
		held, perTick int
	}{
		{0, 0}, {1, 1}, {29, 1}, {30, 1}, {31, 2}, {250, 9},
	} {
		held := mk(tc.held)
		seen := map[resource.Address]int{}
		next := 0
		ticks := int(selfProbePeriod / selfProbeTick)
		for range ticks {
			var batch map[string][]netip.Addr
			batch, next = selfProbeBatch(held, next)
			n := 0
			for link, ips := range batch {
				for _, ip := range ips {
					n++
					for _, ad := range held {
						if ad.Interface == link && ad.Prefix.Addr() == ip {
							seen[ad]++
						}
					}
				}
			}
			if n != tc.perTick {
				t.Fatalf("%d held: %d probes in a tick, want %d", tc.held, n, tc.perTick)
			}
		}
		for _, ad := range held {
			if seen[ad] == 0 {
				t.Errorf("%d held: %v never probed in %v", tc.held, ad, selfProbePeriod)
			}
		}
	}
}
