package main

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/clusterd/clusterd/consensus/lease"
)

func TestRenewalCapacity(t *testing.T) {
	c := renewalCapacity()
	if _, err := renewalSize(c); err != nil {
		t.Errorf("renewal of %d claims (the capacity): %v", c, err)
	}
	size, err := renewalSize(c + 1)
	if !errors.Is(err, lease.ErrTooLarge) || size <= lease.MaxDatagram {
		t.Errorf("renewal of %d claims: %d bytes, %v; want more than %d and ErrTooLarge", c+1, size, err, lease.MaxDatagram)
	}
	// A claim of the workload's names is {"r":"vip-00001","e":12345}, plus a comma.
	if c < lease.MaxDatagram/30 || c > lease.MaxDatagram/20 {
		t.Errorf("capacity %d claims is not what 20-30 bytes per claim in %d bytes gives", c, lease.MaxDatagram)
	}
	t.Logf("one datagram holds %d claims; 2,000 claims take %d bytes", c, must(renewalSize(2000)))
}

func must(n int, err error) int {
	if err != nil {
		return -1
	}
	return n
}

// The benchmarks below time, on the data model alone, what the agents do on every
// lease round, reconcile pass and status call; go test -bench . ./test/bench/scale.

func BenchmarkStateClone10k(b *testing.B) {
	st := state(10000, 5)
	for b.Loop() {
		st.Clone()
	}
}

func BenchmarkStatusJSON10k(b *testing.B) {
	s := status(state(10000, 5))
	for b.Loop() {
		if _, err := json.Marshal(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHolder2000 is one node's lease work per reply with 2,000 claims: what
// the agent's afterChange does on every voter reply (a deadline per claim).
func BenchmarkHolder2000(b *testing.B) {
	h, cs := holderWithReplies(2000, 5)
	for b.Loop() {
		for _, c := range cs {
			h.Deadline(c)
		}
	}
}

// BenchmarkVoter2000 is one voter handling one renewal of 2,000 unchanged claims.
func BenchmarkVoter2000(b *testing.B) {
	cs := claims(2000)
	v := lease.NewVoter(lease.Timers{Renew: 25 * time.Millisecond, Lease: 150 * time.Millisecond, Margin: 10 * time.Millisecond}, 0)
	assigned := func(string) (string, uint64, bool) { return "n1", 12345, true }
	rev := lease.Rev(cs)
	v.Handle(time.Second, lease.Renewal{Node: "n1", Inc: 1, Seq: 1, Rev: rev, Claims: cs, Full: true}, 1, assigned)
	seq := uint64(1)
	for b.Loop() {
		seq++
		v.Handle(time.Second+time.Duration(seq), lease.Renewal{Node: "n1", Inc: 1, Seq: seq, Rev: rev}, 1, assigned)
	}
}

func TestHolderWithReplies(t *testing.T) {
	h, cs := holderWithReplies(10, 5)
	if d := h.Deadline(cs[0]); d != time.Second+140*time.Millisecond {
		t.Errorf("deadline after 5 confirmations sent at 1s: got %v, want 1.14s (L−G later)", d)
	}
}

// TestStateSize checks that the encoded state grows linearly with the resources
// (about 140 bytes each) and logs the size of the 5×100 lab state, which the lab's
// snapshot checks.
func TestStateSize(t *testing.T) {
	size := func(n int) int {
		b, err := json.Marshal(state(n, 5))
		if err != nil {
			t.Fatal(err)
		}
		return len(b)
	}
	s100, s1000 := size(100), size(1000)
	if r := float64(s1000) / float64(s100); r < 9.5 || r > 10.5 {
		t.Errorf("state of 1,000 resources is %d bytes, of 100 %d: ratio %.2f, want about 10", s1000, s100, r)
	}
	t.Logf("state of 500 resources: %d bytes; of 10,000: %d bytes", size(500), size(10000))
}
