package announce

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

var t0 = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBucket(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
		takes []int         // frames taken at t0, one after another, each after waiting
		at    time.Duration // then ask at t0+at
		n     int           // for n frames
		want  time.Duration // how long to wait
	}{
		{"full bucket", 100, 10, nil, 0, 2, 0},
		{"exactly empty", 100, 10, []int{10}, 0, 1, 10 * time.Millisecond},
		{"two frames from empty", 100, 10, []int{10}, 0, 2, 20 * time.Millisecond},
		{"refilled in part", 100, 10, []int{10}, 5 * time.Millisecond, 1, 5 * time.Millisecond},
		{"refilled enough", 100, 10, []int{10}, 10 * time.Millisecond, 1, 0},
		{"refill capped at burst", 100, 10, []int{10}, time.Hour, 10, 0},
		{"refill cap leaves no more than burst", 100, 10, []int{10}, time.Hour, 11, 10 * time.Millisecond},
		{"debt is paid first", 1000, 2, []int{2, 2}, 0, 1, 3 * time.Millisecond},
	} {
		b := newBucket(tc.rate, tc.burst, t0)
		for _, n := range tc.takes {
			b.take(t0, n)
		}
		if got := b.wait(t0.Add(tc.at), tc.n); got != tc.want {
			t.Errorf("%s: rate %v burst %d after taking %v, wait(+%v, %d) = %v, want %v",
				tc.name, tc.rate, tc.burst, tc.takes, tc.at, tc.n, got, tc.want)
		}
	}
}

// TestBucketLongRun checks the long-run rate: sending as fast as wait allows
// for 10 s at 100 frames/s burst 10 sends 10 + 1000 frames.
func TestBucketLongRun(t *testing.T) {
	b := newBucket(100, 10, t0)
	now, sent := t0, 0
	for now.Before(t0.Add(10 * time.Second)) {
		if w := b.wait(now, 1); w > 0 {
			now = now.Add(w)
			continue
		}
		b.take(now, 1)
		sent++
	}
	if got, want := sent, 10+1000; got < want-1 || got > want+1 {
		t.Errorf("sent %d frames in 10 s at 100/s burst 10, want %d±1", got, want)
	}
}

func addr4(i int) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}) }

// drain sends everything due at now from s, recording addresses, and marks
// each round done at now.
func drain(s *schedule, now time.Time) []string {
	var out []string
	for {
		r, wait, ok := s.next(now)
		if !ok || wait > 0 {
			return out
		}
		s.pop(r)
		out = append(out, r.addr.String())
		s.done(r, now)
	}
}

func TestScheduleOrder(t *testing.T) {
	s := newSchedule(3, time.Second, 0)
	for _, i := range []int{3, 1, 2} {
		if !s.add(addr4(i)) {
			t.Fatalf("add(%s) = false on an empty schedule", addr4(i))
		}
	}
	if s.add(addr4(1)) {
		t.Errorf("add(%s) again = true, want false (already scheduled)", addr4(1))
	}
	got := fmt.Sprint(drain(s, t0))
	if want := "[192.0.2.3 192.0.2.1 192.0.2.2]"; got != want {
		t.Errorf("first rounds went out as %s, want Announce order %s", got, want)
	}
	// A new address announced while repeats are due goes first.
	s.add(addr4(4))
	r, _, _ := s.next(t0.Add(time.Second))
	if r.addr != addr4(4) {
		t.Errorf("with repeats due, next is %s, want the new first round %s", r.addr, addr4(4))
	}
}

type step struct {
	at   time.Duration // clock, after t0
	want string        // what drain sends then
}

func TestScheduleRepeats(t *testing.T) {
	const a = "[192.0.2.1]"
	for _, tc := range []struct {
		name    string
		count   int
		refresh time.Duration
		steps   []step
	}{
		{"one round", 1, 0, []step{{0, a}, {time.Second, "[]"}, {time.Hour, "[]"}}},
		{"three rounds 1 s apart", 3, 0, []step{
			{0, a}, {999 * time.Millisecond, "[]"}, {time.Second, a}, {1500 * time.Millisecond, "[]"},
			{2 * time.Second, a}, {3 * time.Second, "[]"}, {time.Hour, "[]"}}},
		{"late repeat keeps its spacing", 3, 0, []step{
			{0, a}, {1700 * time.Millisecond, a}, {2 * time.Second, "[]"}, {2700 * time.Millisecond, a}}},
		{"refresh after repeats", 2, 10 * time.Second, []step{
			{0, a}, {time.Second, a}, {10 * time.Second, "[]"}, {11 * time.Second, a}, {21 * time.Second, a}}},
	} {
		s := newSchedule(tc.count, time.Second, tc.refresh)
		s.add(addr4(1))
		for _, st := range tc.steps {
			if got := fmt.Sprint(drain(s, t0.Add(st.at))); got != st.want {
				t.Errorf("%s: at +%v sent %s, want %s", tc.name, st.at, got, st.want)
			}
		}
		if tc.refresh == 0 && s.len() != 0 {
			t.Errorf("%s: %d addresses still scheduled after all rounds", tc.name, s.len())
		}
	}
}

func TestScheduleCancel(t *testing.T) {
	s := newSchedule(3, time.Second, 0)
	for i := 1; i <= 3; i++ {
		s.add(addr4(i))
	}
	// Cancel one waiting for its first round, one waiting for a repeat, and one
	// that is being sent.
	if !s.cancel(addr4(2)) {
		t.Fatal("cancel of a scheduled address = false")
	}
	if s.cancel(addr4(9)) {
		t.Error("cancel of an address never scheduled = true")
	}
	if got, want := fmt.Sprint(drain(s, t0)), "[192.0.2.1 192.0.2.3]"; got != want {
		t.Errorf("after cancelling %s, first rounds %s, want %s", addr4(2), got, want)
	}
	s.cancel(addr4(1))
	r, _, _ := s.next(t0.Add(time.Second))
	s.pop(r)
	s.cancel(r.addr) // r (192.0.2.3) is in flight
	s.done(r, t0.Add(time.Second))
	if got := drain(s, t0.Add(time.Hour)); len(got) != 0 || s.len() != 0 {
		t.Errorf("after cancelling everything, sent %v and %d still scheduled", got, s.len())
	}
	// Announce again after a cancel: scheduled afresh, once.
	s.add(addr4(2))
	if got, want := fmt.Sprint(drain(s, t0.Add(2*time.Hour))), "[192.0.2.2]"; got != want {
		t.Errorf("re-announced after cancel: sent %s, want %s", got, want)
	}
}

func TestScheduleCancelThenAddWhileQueued(t *testing.T) {
	// The cancelled round stays in the FIFO; the new one must go out once, in
	// its new place.
	s := newSchedule(1, time.Second, 0)
	s.add(addr4(1))
	s.add(addr4(2))
	s.cancel(addr4(1))
	s.add(addr4(1))
	if got, want := fmt.Sprint(drain(s, t0)), "[192.0.2.2 192.0.2.1]"; got != want {
		t.Errorf("sent %s, want %s", got, want)
	}
}

func TestScheduleDrop(t *testing.T) {
	s := newSchedule(3, time.Second, 0)
	s.add(addr4(1))
	r, _, _ := s.next(t0)
	s.pop(r)
	s.drop(r)
	if s.len() != 0 {
		t.Errorf("after drop, %d scheduled, want 0", s.len())
	}
	if _, _, ok := s.next(t0.Add(time.Hour)); ok {
		t.Error("after drop, next still returns a round")
	}
}
