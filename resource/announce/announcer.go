package announce

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// maxFramesPerRound is the most frames one round sends (IPv4: request + reply).
const maxFramesPerRound = 2

// minWait coalesces wake-ups: Run never sleeps for less, so at the default
// rate one wake-up sends about five rounds instead of one (measured: it cuts
// the CPU of announcing 1,000 addresses several times over). Rounds go out at
// most minWait late, never early, and the rate limit holds exactly.
const minWait = 5 * time.Millisecond

// framesPerRound is what one announcement round of addr costs in the rate limit.
func framesPerRound(addr netip.Addr) int {
	if addr.Is4() {
		return 2 // gratuitous ARP request and reply
	}
	return 1 // unsolicited Neighbor Advertisement
}

// sender puts the frames of one announcement round on the wire.
type sender interface {
	// send transmits one round for addr and returns how many frames it wrote.
	send(addr netip.Addr) (frames int, err error)
	Close() error
}

// Announcer announces cluster addresses on one interface: each Announce sends
// Config.Count rounds, the first as soon as the interface's rate limit allows
// (first rounds in Announce order, ahead of any repeat), the others
// Config.Interval apart. Its methods are safe for concurrent use; Run does the
// sending.
type Announcer struct {
	link string
	cfg  Config
	log  *slog.Logger
	open func() (sender, error) // the real link, or a fake in tests

	running atomic.Bool
	wake    chan struct{} // capacity 1: something was scheduled

	// sendMu is held by Run while it checks and sends one round; Cancel takes it
	// to wait out a round that is on its way.
	sendMu sync.Mutex

	mu    sync.Mutex // guards sched
	sched *schedule

	sent, rounds, dropped, limited, sendErrors atomic.Uint64
}

// New returns an Announcer for the interface named link. It opens nothing and
// starts nothing; Run does.
func New(link string, cfg Config) (*Announcer, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("%w (link %s)", err, link)
	}
	a := &Announcer{
		link:  link,
		cfg:   cfg,
		log:   cfg.Logger.With("link", link),
		wake:  make(chan struct{}, 1),
		sched: newSchedule(cfg.Count, cfg.Interval, cfg.Refresh),
	}
	a.open = func() (sender, error) { return openLink(link) }
	return a, nil
}

// Link returns the name of the interface the Announcer sends on.
func (a *Announcer) Link() string { return a.link }

// Announce schedules addr's announcement rounds and returns at once. An
// address already scheduled is left as it is. It is an error only if addr is
// not a unicast address.
func (a *Announcer) Announce(addr netip.Addr) error {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() || addr.IsLoopback() {
		return fmt.Errorf("announce %s on %s: not a unicast address", addr, a.link)
	}
	a.mu.Lock()
	added := a.sched.add(addr)
	a.mu.Unlock()
	if added {
		select {
		case a.wake <- struct{}{}:
		default: // Run is already due to look
		}
	}
	return nil
}

// Cancel unschedules addr. When Cancel returns, no frame for addr is being or
// will be sent (until addr is announced again): it waits for a round of addr
// that Run may be sending at that moment, which takes microseconds.
func (a *Announcer) Cancel(addr netip.Addr) {
	addr = addr.Unmap().WithZone("")
	a.mu.Lock()
	a.sched.cancel(addr)
	a.mu.Unlock()
	a.sendMu.Lock() // the empty critical section is the point: wait for a send in flight
	a.sendMu.Unlock()
}

// Scheduled reports whether addr has rounds (or refreshes) still to come.
func (a *Announcer) Scheduled(addr netip.Addr) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.sched.byAddr[addr.Unmap().WithZone("")]
	return ok
}

// Stats are an Announcer's counters since New. Counters only grow.
type Stats struct {
	Sent           uint64 // frames written to the link
	Rounds         uint64 // rounds sent (IPv4: request + reply; IPv6: one advertisement)
	DroppedByCheck uint64 // rounds not sent because BeforeSend failed; each dropped its address
	RateLimited    uint64 // rounds that had to wait for the rate limit
	SendErrors     uint64 // rounds whose frames the kernel refused
	Scheduled      int    // addresses with rounds still to come (a gauge)
}

// Stats returns the current counters.
func (a *Announcer) Stats() Stats {
	a.mu.Lock()
	n := a.sched.len()
	a.mu.Unlock()
	return Stats{
		Sent:           a.sent.Load(),
		Rounds:         a.rounds.Load(),
		DroppedByCheck: a.dropped.Load(),
		RateLimited:    a.limited.Load(),
		SendErrors:     a.sendErrors.Load(),
		Scheduled:      n,
	}
}

// Run opens the interface's packet socket and sends scheduled rounds until ctx
// is done, then closes the socket and returns nil. It returns an error if the
// socket cannot be opened (missing interface, no CAP_NET_RAW); a send that
// fails later is logged and counted, and the socket is reopened for the next
// round. Run may be called only once.
func (a *Announcer) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return fmt.Errorf("announce: Run called twice for link %s", a.link)
	}
	s, err := a.open()
	if err != nil {
		return err
	}
	defer s.Close()
	b := newBucket(a.cfg.Rate, a.cfg.Burst, time.Now())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	failing := false // a send failed and nothing has succeeded since
	for {
		if ctx.Err() != nil {
			return nil
		}
		wait, idle := a.step(s, b, &failing)
		if wait == 0 && !idle {
			continue
		}
		var tick <-chan time.Time
		if !idle {
			timer.Reset(max(wait, minWait))
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-a.wake:
		case <-tick:
		}
		timer.Stop()
	}
}

// step sends at most one round. It returns how long until the next round may
// be due (0: try again now), or idle when nothing is scheduled.
func (a *Announcer) step(s sender, b *bucket, failing *bool) (wait time.Duration, idle bool) {
	a.sendMu.Lock()
	defer a.sendMu.Unlock()

	now := time.Now()
	a.mu.Lock()
	r, wait, ok := a.sched.next(now)
	if !ok || wait > 0 {
		a.mu.Unlock()
		return wait, !ok
	}
	cost := framesPerRound(r.addr)
	if lw := b.wait(now, cost); lw > 0 {
		if !r.limited {
			r.limited = true
			a.limited.Add(1)
		}
		a.mu.Unlock()
		return lw, false
	}
	a.sched.pop(r)
	a.mu.Unlock()

	addr, nth := r.addr, r.sent+1
	if a.cfg.BeforeSend != nil {
		if err := a.cfg.BeforeSend(addr); err != nil {
			a.mu.Lock()
			a.sched.drop(r)
			a.mu.Unlock()
			a.dropped.Add(1)
			a.log.Info("announcement dropped: check before sending failed", "event", "announce_vetoed", "vip", addr, "round", nth, "err", err)
			return 0, false
		}
	}
	b.take(time.Now(), cost)
	n, err := s.send(addr)
	a.sent.Add(uint64(n))
	if err != nil {
		a.sendErrors.Add(1)
		if !*failing {
			a.log.Warn("announcement failed; further failures are only counted until one succeeds",
				"event", "announce_failed", "vip", addr, "round", nth, "err", err)
		}
		*failing = true
	} else {
		a.rounds.Add(1)
		if *failing {
			a.log.Info("announcements succeed again", "event", "announce_recovered", "vip", addr)
		}
		*failing = false
		a.log.Debug("announced", "event", "announced", "vip", addr, "round", nth)
	}
	a.mu.Lock()
	a.sched.done(r, time.Now())
	a.mu.Unlock()
	return 0, false
}
