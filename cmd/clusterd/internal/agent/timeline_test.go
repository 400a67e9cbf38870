package agent

import (
	"net/netip"
	"testing"
	"time"
)

func TestTimelineReportedOnceAtFirstAnnouncement(t *testing.T) {
	var tls timelines
	ip := netip.MustParseAddr("192.0.2.10")
	t0 := time.Unix(1000, 0)
	tls.seen("web", 7, ip, t0)
	if tls.announced(ip, t0) != nil {
		t.Fatalf("a timeline finished before its address was up")
	}
	tls.up("web", t0.Add(20*time.Millisecond))
	got := tls.announced(ip, t0.Add(21*time.Millisecond))
	if got == nil || got.resource != "web" || got.up.Sub(got.assigned) != 20*time.Millisecond {
		t.Fatalf("first announcement: got %+v", got)
	}
	if tls.announced(ip, t0.Add(30*time.Millisecond)) != nil {
		t.Fatalf("a timeline was reported twice")
	}
	// A new assignment (epoch) of the same address is followed afresh; a dropped one is not.
	tls.seen("web", 9, ip, t0.Add(time.Second))
	tls.up("web", t0.Add(time.Second+5*time.Millisecond))
	tls.drop(map[string]bool{})
	if tls.announced(ip, t0.Add(2*time.Second)) != nil {
		t.Fatalf("a dropped timeline was reported")
	}
	tls.seen("web", 10, ip, t0.Add(3*time.Second))
	tls.up("web", t0.Add(3*time.Second+time.Millisecond))
	if got := tls.announced(ip, t0.Add(3*time.Second+2*time.Millisecond)); got == nil || got.epoch != 10 {
		t.Fatalf("re-assigned address: got %+v", got)
	}
}
