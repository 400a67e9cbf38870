package announce

import (
	"container/heap"
	"net/netip"
	"time"
)

// schedule decides which address to announce next. It is pure: time comes in
// as an argument and nothing is sent here. First rounds wait in a FIFO and
// always go before repeats; repeats (and refreshes) wait in a heap ordered by
// due time.
type schedule struct {
	count    int           // rounds per takeover, >= 1
	interval time.Duration // spacing between rounds of one address
	refresh  time.Duration // spacing of refresh rounds after the last repeat; 0 = none

	byAddr map[netip.Addr]*round // every scheduled address
	first  []*round              // first rounds in Announce order; may hold cancelled rounds
	later  roundHeap             // repeats by due time
	seq    uint64                // insertion counter, breaks ties between equal due times
}

// round is one scheduled address.
type round struct {
	addr    netip.Addr
	sent    int       // rounds sent so far
	due     time.Time // earliest time of the next round (repeats only)
	seq     uint64
	index   int  // position in later; -1 when not in it
	limited bool // this round already waited for the rate limit (counted once)
}

func newSchedule(count int, interval, refresh time.Duration) *schedule {
	return &schedule{count: count, interval: interval, refresh: refresh, byAddr: make(map[netip.Addr]*round)}
}

// add schedules a first round for addr. It reports false, and changes nothing,
// if addr is already scheduled.
func (s *schedule) add(addr netip.Addr) bool {
	if _, ok := s.byAddr[addr]; ok {
		return false
	}
	s.seq++
	r := &round{addr: addr, seq: s.seq, index: -1}
	s.byAddr[addr] = r
	s.first = append(s.first, r)
	return true
}

// cancel unschedules addr. It reports whether addr was scheduled.
func (s *schedule) cancel(addr netip.Addr) bool {
	r, ok := s.byAddr[addr]
	if !ok {
		return false
	}
	delete(s.byAddr, addr)
	if r.index >= 0 {
		heap.Remove(&s.later, r.index)
	}
	// A round still in first is skipped by next, which checks byAddr.
	return true
}

// live reports whether r is still the scheduled round for its address (not
// cancelled, and not replaced by a later add after a cancel).
func (s *schedule) live(r *round) bool { return s.byAddr[r.addr] == r }

// next returns the round to send next and how long until it is due (0: now).
// ok is false when nothing is scheduled. next does not remove the round; pop
// does, once the caller commits to sending it.
func (s *schedule) next(now time.Time) (r *round, wait time.Duration, ok bool) {
	for len(s.first) > 0 && !s.live(s.first[0]) {
		s.first[0] = nil
		s.first = s.first[1:]
	}
	if len(s.first) > 0 {
		return s.first[0], 0, true
	}
	s.first = nil // let the emptied backing array go
	if len(s.later) == 0 {
		return nil, 0, false
	}
	r = s.later[0]
	if wait = r.due.Sub(now); wait < 0 {
		wait = 0
	}
	return r, wait, true
}

// pop removes r, which next just returned, from its queue. r stays scheduled
// (in byAddr) until done or drop.
func (s *schedule) pop(r *round) {
	if r.index >= 0 {
		heap.Remove(&s.later, r.index)
		return
	}
	s.first[0] = nil
	s.first = s.first[1:]
}

// done records that a round of r went out at now, and schedules its next round:
// a repeat interval later, a refresh once the repeats are done, or nothing.
func (s *schedule) done(r *round, now time.Time) {
	if !s.live(r) {
		return // cancelled while it was being sent
	}
	r.sent++
	r.limited = false
	switch {
	case r.sent < s.count:
		r.due = now.Add(s.interval)
	case s.refresh > 0:
		r.due = now.Add(s.refresh)
	default:
		delete(s.byAddr, r.addr)
		return
	}
	s.seq++
	r.seq = s.seq
	heap.Push(&s.later, r)
}

// drop unschedules r, which pop removed from its queue, for good.
func (s *schedule) drop(r *round) {
	if s.live(r) {
		delete(s.byAddr, r.addr)
	}
}

// len returns the number of scheduled addresses.
func (s *schedule) len() int { return len(s.byAddr) }

// roundHeap is a container/heap of rounds ordered by due time, then by when
// they were scheduled.
type roundHeap []*round

func (h roundHeap) Len() int { return len(h) }
func (h roundHeap) Less(i, j int) bool {
	if !h[i].due.Equal(h[j].due) {
		return h[i].due.Before(h[j].due)
	}
	return h[i].seq < h[j].seq
}
func (h roundHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}
func (h *roundHeap) Push(x any) {
	r := x.(*round)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *roundHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	r.index = -1
	*h = old[:len(old)-1]
	return r
}
