package agent

import (
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// timelines follows each takeover on this node from the assignment it saw to the
// address being up and first announced, for the failover event and the phase
// histograms. The leader records detection and commit (placement.go).
type timelines struct {
	mu   sync.Mutex // guards m and open
	m    map[string]*timeline
	open map[netip.Addr]*timeline // up, not yet announced: what announced looks for
}

type timeline struct {
	resource  string
	epoch     uint64
	ip        netip.Addr
	assigned  time.Time
	up        time.Time
	announced time.Time
	reported  bool
}

// seen notes that resource is assigned here at epoch (first sighting counts).
func (t *timelines) seen(resource string, epoch uint64, ip netip.Addr, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*timeline{}
	}
	if tl, ok := t.m[resource]; ok && tl.epoch == epoch {
		return
	}
	t.m[resource] = &timeline{resource: resource, epoch: epoch, ip: ip, assigned: now}
}

// up notes the address was added.
func (t *timelines) up(resource string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if tl, ok := t.m[resource]; ok && tl.up.IsZero() {
		tl.up = now
		if t.open == nil {
			t.open = map[netip.Addr]*timeline{}
		}
		t.open[tl.ip] = tl
	}
}

// announced notes the first announcement of ip and returns the finished timeline
// once (nil otherwise).
func (t *timelines) announced(ip netip.Addr, now time.Time) *timeline {
	t.mu.Lock()
	defer t.mu.Unlock()
	tl, ok := t.open[ip]
	if !ok {
		return nil
	}
	delete(t.open, ip)
	if t.m[tl.resource] != tl {
		return nil // replaced or dropped since
	}
	tl.announced = now
	if tl.reported {
		return nil
	}
	tl.reported = true
	c := *tl
	return &c
}

// drop forgets resources no longer assigned here.
func (t *timelines) drop(keep map[string]bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name, tl := range t.m {
		if !keep[name] {
			delete(t.m, name)
			if t.open[tl.ip] == tl {
				delete(t.open, tl.ip)
			}
		}
	}
}

func (tl *timeline) fields() map[string]string {
	f := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
	return map[string]string{"assigned": f(tl.assigned), "address_up": f(tl.up), "first_announcement": f(tl.announced)}
}

func (tl *timeline) String() string {
	return fmt.Sprintf("resource %s online here: address up %s after the assignment was seen, first announcement %s later",
		tl.resource, tl.up.Sub(tl.assigned).Round(time.Millisecond), tl.announced.Sub(tl.up).Round(time.Microsecond))
}
