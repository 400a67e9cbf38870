package netbios

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// never is a time that does not come.
var never = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// unit registers one name on one WINS server from every endpoint, in endpoint
// order, and keeps the registrations alive.
type unit struct {
	c      *Client
	server netip.AddrPort
	name   nbns.Name
	regs   []*reg
	woken  atomic.Bool // a challenge moved a verification forward (Client.wake says so)
	bcast  bool        // server is the subnet broadcast address (B-node)
}

// nextLocked is when r needs work next.
func (u *unit) nextLocked(r *reg) time.Time {
	switch r.state {
	case StateRegistered, StateRefreshing:
		if u.c.cfg.VerifyInterval > 0 && r.verify.Before(r.refresh) {
			return r.verify
		}
		return r.refresh
	case StateReleased:
		return never
	}
	return r.due
}

// step does the work that is due and returns when to come back.
func (u *unit) step(ctx context.Context) time.Time {
	c := u.c
	now := c.cfg.Clock.Now()
	next := now.Add(c.cfg.BackoffMax)
	for _, r := range u.regs {
		c.mu.Lock()
		st, due := r.state, u.nextLocked(r)
		c.mu.Unlock()
		if !due.After(now) && ctx.Err() == nil {
			switch {
			case st == StateRegistering || st == StateFailed || st == StateConflict:
				u.register(ctx, r)
			case !r.refresh.After(now):
				u.refresh(ctx, r)
			default:
				u.verify(ctx, r)
			}
			now = c.cfg.Clock.Now()
			c.mu.Lock()
			changed := r.state != st
			due = u.nextLocked(r)
			c.mu.Unlock()
			if changed {
				c.changed()
			}
		}
		if due.Before(next) {
			next = due
		}
	}
	return next
}

func (u *unit) entry(ep Endpoint) nbns.NBEntry {
	return nbns.NBEntry{Flags: nbns.MakeNBFlags(u.c.cfg.NodeType, false), Addr: ep.Addr()}
}

func (u *unit) register(ctx context.Context, r *reg) {
	if u.bcast {
		u.claim(ctx, r)
		return
	}
	m := nbns.NewMultiHomedRegistration(0, u.name, u.c.cfg.TTL, u.entry(r.ep))
	resp, err := u.c.transact(ctx, r.ep, u.server, m, time.Time{})
	u.outcome(ctx, r, resp, err, false)
}

func (u *unit) refresh(ctx context.Context, r *reg) {
	m := nbns.NewRefresh(0, u.name, u.c.cfg.TTL, u.entry(r.ep))
	resp, err := u.c.transact(ctx, r.ep, u.server, m, time.Time{})
	u.outcome(ctx, r, resp, err, true)
}

func (u *unit) backoff(attempts int) time.Duration {
	d := u.c.cfg.BackoffMin
	for i := 1; i < attempts && d < u.c.cfg.BackoffMax; i++ {
		d *= 2
	}
	return min(d, u.c.cfg.BackoffMax)
}

// outcome applies the answer (or its absence) to a registration or refresh.
func (u *unit) outcome(ctx context.Context, r *reg, resp *nbns.Message, err error, refreshing bool) {
	c := u.c
	if ctx.Err() != nil {
		return
	}
	now := c.cfg.Clock.Now()
	if err != nil {
		if errors.Is(err, errNoAnswer) {
			c.noAnswer(r)
		} else {
			c.log.Error("WINS request failed", "vip", r.ep.Addr(), "server", u.server, "name", u.name.String(), "err", err)
		}
		c.mu.Lock()
		r.attempts++
		wait := u.backoff(r.attempts)
		switch {
		case refreshing && now.Before(r.expires):
			r.state, r.refresh = StateRefreshing, now.Add(min(wait, r.expires.Sub(now)))
		default:
			r.state, r.due = StateFailed, now.Add(wait)
		}
		c.mu.Unlock()
		return
	}
	switch rc := resp.RCode; {
	case rc == nbns.RCodeOK:
		u.registered(r, resp, now)
	case rc == nbns.RCodeActive || rc == nbns.RCodeConflict:
		u.conflict(ctx, r, resp, now)
	case refreshing && (rc == nbns.RCodeName || rc == nbns.RCodeRefused):
		// The server lost the record (or our address in it): register again now.
		c.log.Info("WINS server no longer holds the name; registering again", "vip", r.ep.Addr(), "server", u.server, "name", u.name.String(), "rcode", rc)
		c.mu.Lock()
		r.state, r.due = StateRegistering, now
		c.mu.Unlock()
	default:
		c.mu.Lock()
		r.attempts++
		first := r.attempts == 1
		r.state, r.due = StateFailed, now.Add(u.backoff(r.attempts))
		c.mu.Unlock()
		if first {
			e := Event{ID: EventWINSFailed, Name: u.name, Addr: r.ep.Addr(), Server: u.server, RCode: rc}
			c.log.Warn(e.String(), "event", e.ID, "vip", e.Addr, "server", u.server)
			c.cfg.OnEvent(e)
		}
	}
}

func (u *unit) registered(r *reg, resp *nbns.Message, now time.Time) {
	c := u.c
	ttl := c.cfg.TTL
	if len(resp.Answers) > 0 && resp.Answers[0].TTL > 0 {
		ttl = resp.Answers[0].TTL
	}
	life := time.Duration(ttl) * time.Second
	c.mu.Lock()
	defer c.mu.Unlock()
	was := r.state
	r.state, r.ttl, r.attempts, r.other = StateRegistered, ttl, 0, nil
	r.expires, r.refresh = now.Add(life), now.Add(life/2-c.early(life/2))
	r.verify = now.Add(c.cfg.VerifyInterval - c.early(c.cfg.VerifyInterval))
	if was == StateConflict {
		c.setConflictLocked(r, false)
	}
	if was != StateRegistered && was != StateRefreshing {
		c.log.Debug("registered NetBIOS name with WINS", "vip", r.ep.Addr(), "server", u.server, "name", u.name.String(), "ttl", ttl)
	}
}

// conflict handles ACT_ERR/CFT_ERR: the name is marked in conflict on the responder
// and reported with the other holder, taken from the answer or asked of the server.
func (u *unit) conflict(ctx context.Context, r *reg, resp *nbns.Message, now time.Time) {
	c := u.c
	other := u.others(resp)
	if len(other) == 0 {
		if q, err := c.transact(ctx, r.ep, u.server, nbns.NewNameQuery(0, u.name, nbns.FlagRD), time.Time{}); err == nil && q.RCode == nbns.RCodeOK {
			other = u.others(q)
		}
	}
	u.mark(r, resp.RCode, other, now)
}

// mark puts r in conflict and reports it when it was not already.
func (u *unit) mark(r *reg, rcode nbns.RCode, other []netip.Addr, now time.Time) {
	c := u.c
	c.mu.Lock()
	was := r.state
	r.state, r.due, r.other = StateConflict, now.Add(c.cfg.ConflictRetry), other
	c.setConflictLocked(r, true)
	c.mu.Unlock()
	if was != StateConflict {
		e := Event{ID: EventNameConflict, Name: u.name, Addr: r.ep.Addr(), Server: u.server, Other: other, RCode: rcode}
		c.log.Warn(e.String(), "event", e.ID, "vip", e.Addr, "server", u.server)
		c.cfg.OnEvent(e)
	}
}

// others lists the addresses in m's first answer that are not ours.
func (u *unit) others(m *nbns.Message) []netip.Addr {
	if len(m.Answers) == 0 {
		return nil
	}
	var out []netip.Addr
	for _, e := range m.Answers[0].NB {
		if !u.c.isOurs(e.Addr) {
			out = append(out, e.Addr)
		}
	}
	return out
}

// verify looks the name up on the server: our address missing (someone else's
// release dropped the record) → register again; addresses that are neither ours nor
// peers → conflict; after a challenge with nobody new in the record → the server
// refused someone else (reported as defended).
func (u *unit) verify(ctx context.Context, r *reg) {
	c := u.c
	resp, err := c.transact(ctx, r.ep, u.server, nbns.NewNameQuery(0, u.name, nbns.FlagRD), time.Time{})
	now := c.cfg.Clock.Now()
	c.mu.Lock()
	r.verify = now.Add(c.cfg.VerifyInterval - c.early(c.cfg.VerifyInterval))
	challenged := r.challenged
	r.challenged = false
	c.mu.Unlock()
	if err != nil {
		return // the refresh finds out about an unreachable server
	}
	var entries []nbns.NBEntry
	if resp.RCode == nbns.RCodeOK && len(resp.Answers) > 0 {
		entries = resp.Answers[0].NB
	}
	if !slices.ContainsFunc(entries, func(e nbns.NBEntry) bool { return e.Addr == r.ep.Addr() }) {
		c.log.Info("WINS server lost the name; registering again", "vip", r.ep.Addr(), "server", u.server, "name", u.name.String(), "rcode", resp.RCode)
		c.mu.Lock()
		r.state, r.due = StateRegistering, now
		c.mu.Unlock()
		return
	}
	if other := c.foreign(u.name, entries); len(other) > 0 {
		u.mark(r, resp.RCode, other, now)
		return
	}
	if challenged && !slices.ContainsFunc(entries, func(e nbns.NBEntry) bool { return !c.isOurs(e.Addr) }) {
		e := Event{ID: EventNameConflict, Name: u.name, Addr: r.ep.Addr(), Server: u.server, Defended: true}
		c.log.Warn(e.String(), "event", e.ID, "vip", e.Addr, "server", u.server)
		c.cfg.OnEvent(e)
	}
}

// release releases the name from every endpoint (NAM_ERR: already gone) within
// ReleaseTimeout, then registers again the peers (other cluster addresses carrying
// the name) the server listed before: Samba drops a whole multi-homed record on the
// first release. Without peers no lookup is needed.
func (u *unit) release(deadline time.Time) error {
	c := u.c
	if u.bcast {
		u.releaseBroadcast()
		return nil
	}
	ctx := context.Background()
	var survivors []nbns.NBEntry
	var from Endpoint
	c.mu.Lock()
	for _, r := range u.regs {
		if from == nil && (r.state == StateRegistered || r.state == StateRefreshing) {
			from = r.ep
		}
	}
	c.mu.Unlock()
	if peers := c.cfg.Peers(u.name); from != nil && len(peers) > 0 {
		if q, err := c.transact(ctx, from, u.server, nbns.NewNameQuery(0, u.name, nbns.FlagRD), deadline); err == nil && q.RCode == nbns.RCodeOK && len(q.Answers) > 0 {
			for _, e := range q.Answers[0].NB {
				if !c.isOurs(e.Addr) && slices.Contains(peers, e.Addr) {
					survivors = append(survivors, e)
				}
			}
		}
	}
	var errs []error
	for _, r := range u.regs {
		c.mu.Lock()
		skip := r.state == StateConflict // the server holds someone else's record
		c.mu.Unlock()
		if skip {
			continue
		}
		resp, err := c.transact(ctx, r.ep, u.server, nbns.NewRelease(0, u.name, u.entry(r.ep), false), deadline)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("release %v for %v on WINS server %v: %w (the name stays registered there until its TTL ends)", u.name, r.ep.Addr(), u.server, err))
			continue
		case resp.RCode != nbns.RCodeOK && resp.RCode != nbns.RCodeName:
			errs = append(errs, fmt.Errorf("release %v for %v on WINS server %v: refused with %v", u.name, r.ep.Addr(), u.server, resp.RCode))
			continue
		}
		c.mu.Lock()
		r.state = StateReleased
		c.mu.Unlock()
	}
	for _, e := range survivors {
		m := nbns.NewMultiHomedRegistration(0, u.name, c.cfg.TTL, e)
		resp, err := c.transact(ctx, from, u.server, m, deadline)
		if err != nil || resp.RCode != nbns.RCodeOK {
			c.log.Warn("could not register the remaining holder of a released name again", "server", u.server, "name", u.name.String(), "holder", e.Addr, "err", err)
		}
	}
	return errors.Join(errs...)
}
