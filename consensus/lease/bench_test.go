package lease

import (
	"fmt"
	"testing"
	"time"
)

// manyClaims returns n claims vip-00000... at epoch 7: a node holding n addresses.
func manyClaims(n int) []Claim {
	cs := make([]Claim, n)
	for i := range cs {
		cs[i] = Claim{fmt.Sprintf("vip-%05d", i), 7}
	}
	return cs
}

// BenchmarkSteadyRenewal is one renewal of a 2,000-claim set that a voter already
// confirmed, and the holder's pass over its deadlines: the per-round cost of a node
// holding 2,000 addresses, paid by every voter 40 times a second.
func BenchmarkSteadyRenewal(b *testing.B) {
	cs := manyClaims(2000)
	h := NewHolder(timers, "x", 1)
	h.SetVoters([]string{"v1", "v2", "v3"})
	h.SetClaims(cs)
	vs := map[string]*Voter{"v1": NewVoter(timers, 0), "v2": NewVoter(timers, 0), "v3": NewVoter(timers, 0)}
	all := func(string) (string, uint64, bool) { return "x", 7, true }
	now := timers.Lease + timers.Margin
	round := func() {
		for _, o := range h.Round(now) {
			if rep, ok := vs[o.Voter].Handle(now, o.Renewal, 1, all); ok {
				rep.Voter = o.Voter
				h.Receive(rep)
			}
		}
		now += time.Millisecond
	}
	round()
	b.ResetTimer()
	for range b.N {
		round()
		if _, ok := h.Uniform(); !ok {
			for _, c := range cs {
				h.Deadline(c)
			}
		}
	}
	if !h.MayHold(cs[1999], now) {
		b.Fatalf("not held in the steady state")
	}
}
