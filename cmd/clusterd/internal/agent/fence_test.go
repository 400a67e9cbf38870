package agent

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestParseFenceLine(t *testing.T) {
	ip := netip.MustParseAddr
	for _, tc := range []struct {
		line    string
		want    fenceMsg
		wantErr bool
	}{
		{line: "D 123", want: fenceMsg{at: 123}},
		{line: "D 0", want: fenceMsg{}},
		{line: "K 0", want: fenceMsg{keepList: true}},
		{line: "K 500 198.18.1.10 2001:2::10", want: fenceMsg{keepList: true, at: 500, keep: []netip.Addr{ip("198.18.1.10"), ip("2001:2::10")}}},
		{line: "D 1 198.18.1.10", wantErr: true},
		{line: "D", wantErr: true},
		{line: "D -5", wantErr: true},
		{line: "X 5", wantErr: true},
		{line: "K 5 not-an-ip", wantErr: true},
		{line: "", wantErr: true},
	} {
		got, err := parseFenceLine(tc.line)
		if (err != nil) != tc.wantErr {
			t.Errorf("parseFenceLine(%q) error %v, want error %v", tc.line, err, tc.wantErr)
			continue
		}
		if err == nil && (got.keepList != tc.want.keepList || got.at != tc.want.at || !slices.Equal(got.keep, tc.want.keep)) {
			t.Errorf("parseFenceLine(%q) = %+v, want %+v", tc.line, got, tc.want)
		}
	}
}

// TestFenceDue walks the companion through message and clock sequences.
func TestFenceDue(t *testing.T) {
	ms := time.Millisecond
	vip := netip.MustParseAddr("198.18.1.10")
	type ev struct {
		msg  *fenceMsg     // applied first, if set
		now  time.Duration // then due(now)
		want fenceStep
	}
	D := func(at time.Duration) *fenceMsg { return &fenceMsg{at: at} }
	K := func(at time.Duration, ips ...netip.Addr) *fenceMsg {
		return &fenceMsg{keepList: true, at: at, keep: ips}
	}
	for _, tc := range []struct {
		name string
		evs  []ev
	}{
		{"no deadline, nothing to do", []ev{{nil, 10 * ms, fenceStep{}}}},
		{"deadline pending", []ev{{D(100 * ms), 10 * ms, fenceStep{next: 100 * ms}}}},
		{"deadline passes: remove all, once", []ev{
			{D(100 * ms), 10 * ms, fenceStep{next: 100 * ms}},
			{nil, 100 * ms, fenceStep{remove: true}},
			{nil, 200 * ms, fenceStep{}},
		}},
		{"renewed deadline: nothing removed", []ev{
			{D(100 * ms), 90 * ms, fenceStep{next: 100 * ms}},
			{D(130 * ms), 100 * ms, fenceStep{next: 130 * ms}},
		}},
		{"keep list spares kept addresses at the deadline, then the stall removes them", []ev{
			{K(5000*ms, vip), 10 * ms, fenceStep{}},
			{D(100 * ms), 10 * ms, fenceStep{next: 100 * ms}},
			{nil, 100 * ms, fenceStep{remove: true, spareKept: true, next: 5000 * ms}},
			{nil, 2000 * ms, fenceStep{next: 5000 * ms}},
			{nil, 5000 * ms, fenceStep{remove: true}},
			{nil, 6000 * ms, fenceStep{}},
		}},
		{"refreshed keep list holds", []ev{
			{K(5000*ms, vip), 10 * ms, fenceStep{}},
			{D(100 * ms), 100 * ms, fenceStep{remove: true, spareKept: true, next: 5000 * ms}},
			{K(9000*ms, vip), 4000 * ms, fenceStep{next: 9000 * ms}},
			{nil, 5000 * ms, fenceStep{next: 9000 * ms}},
		}},
		{"keep list cleared while past the deadline: kept go", []ev{
			{K(5000*ms, vip), 10 * ms, fenceStep{}},
			{D(100 * ms), 100 * ms, fenceStep{remove: true, spareKept: true, next: 5000 * ms}},
			{K(0), 200 * ms, fenceStep{}},
		}},
		{"expired keep list is no keep list", []ev{
			{K(50*ms, vip), 10 * ms, fenceStep{}},
			{D(100 * ms), 100 * ms, fenceStep{remove: true}},
		}},
		{"lease back after keeping: new deadline pending", []ev{
			{K(5000*ms, vip), 10 * ms, fenceStep{}},
			{D(100 * ms), 100 * ms, fenceStep{remove: true, spareKept: true, next: 5000 * ms}},
			{D(3000 * ms), 2900 * ms, fenceStep{next: 3000 * ms}},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s fenceState
			for i, e := range tc.evs {
				if e.msg != nil {
					s.take(*e.msg)
				}
				if got := s.due(e.now); got != e.want {
					t.Fatalf("step %d (msg %+v, now %v): due = %+v, want %+v", i, e.msg, e.now, got, e.want)
				}
			}
		})
	}
}

func TestSendDeadline(t *testing.T) {
	const ms = time.Millisecond
	lead := fenceLead(ProfileTimers("default")) // 100 ms
	now := 1000 * ms
	cases := []struct {
		name    string
		last, d time.Duration
		want    bool
	}{
		{"first deadline", 0, now + 150*ms, true},
		{"one round later: the known one is still far", now + 130*ms, now + 150*ms, false},
		{"the known one comes within lead", now + 99*ms, now + 150*ms, true},
		{"exactly lead away: not yet", now + lead, now + 150*ms, false},
		{"unchanged, even close", now + 5*ms, now + 5*ms, false},
		{"lease lost: the final deadline goes once the known one is close", now + 50*ms, now + 60*ms, true},
		{"earlier by a hair: at once", now + 140*ms, now + 139*ms, true},
		{"shortened to 0: at once", now + 140*ms, 0, true},
	}
	for _, c := range cases {
		if got := sendDeadline(c.last, c.d, now, lead); got != c.want {
			t.Errorf("%s: sendDeadline(%v, %v, %v, %v) = %v, want %v", c.name, c.last, c.d, now, lead, got, c.want)
		}
	}
}
