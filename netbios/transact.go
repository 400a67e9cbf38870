package netbios

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// errNoAnswer means a server sent no final answer to any try of a request.
var errNoAnswer = errors.New("no answer")

// dispatch hands the responses arriving on ep to the transactions waiting for them
// and handles unsolicited name conflict demands.
func (c *Client) dispatch(ctx context.Context, ep Endpoint) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-ep.Received():
			c.handle(ep, p)
		}
	}
}

// handle passes one packet received at ep to the transaction waiting for it, or
// treats it as a challenge or a name conflict demand. It never blocks.
func (c *Client) handle(ep Endpoint, p Packet) {
	if !p.Msg.Response {
		c.challenged(ep, p)
		return
	}
	c.mu.Lock()
	ch, ok := c.pending[txKey{ep.Addr(), p.Msg.ID}]
	c.mu.Unlock()
	if ok {
		select {
		case ch <- p:
		default: // duplicate answer; the waiter has one already
		}
		return
	}
	c.conflictDemand(ep, p)
}

// challenged handles a WINS server's challenge query for one of our names at ep.
// Unless one of our own addresses is registering the name on that server (then the
// challenge is ours), someone else is: the name is looked up ChallengeCheck later
// to see whether they joined the record (a conflict) or were refused (defended).
func (c *Client) challenged(ep Endpoint, p Packet) {
	n := p.Msg.Questions[0].Name
	now := c.cfg.Clock.Now()
	var wake []*unit
	c.mu.Lock()
	for _, u := range c.units {
		if u.server.Addr() != p.From.Addr() || u.name != n {
			continue
		}
		ours := false
		for _, r := range u.regs {
			ours = ours || r.state == StateRegistering || r.state == StateFailed
		}
		for _, r := range u.regs {
			if r.ep == ep && !ours && (r.state == StateRegistered || r.state == StateRefreshing) {
				r.challenged, r.verify = true, now.Add(c.cfg.ChallengeCheck)
				wake = append(wake, u)
			}
		}
	}
	c.mu.Unlock()
	for _, u := range wake {
		u.woken.Store(true)
	}
	if len(wake) > 0 {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// conflictDemand handles a NAME CONFLICT DEMAND (RFC 1002 4.2.8): an unsolicited
// registration response with CFT_ERR for one of our names at this address.
func (c *Client) conflictDemand(ep Endpoint, p Packet) {
	m := p.Msg
	if m.Opcode != nbns.OpRegister || m.RCode != nbns.RCodeConflict || len(m.Answers) == 0 {
		return
	}
	fromServer := false
	for _, s := range c.cfg.Servers {
		fromServer = fromServer || s.Addr() == p.From.Addr()
	}
	var events []Event
	c.mu.Lock()
	for _, r := range c.regs {
		if r.ep != ep || r.name != m.Answers[0].Name || r.state == StateConflict || r.state == StateReleased {
			continue
		}
		if fromServer && r.server.Addr() != p.From.Addr() {
			continue // a server's demand concerns its own registration only
		}
		r.state, r.due = StateConflict, c.cfg.Clock.Now().Add(c.cfg.ConflictRetry)
		c.setConflictLocked(r, true)
		if len(events) == 0 {
			events = append(events, Event{ID: EventNameConflict, Name: r.name, Addr: ep.Addr(), Server: r.server, From: p.From, RCode: m.RCode})
		}
	}
	c.mu.Unlock()
	if len(events) > 0 {
		c.changed()
	}
	for _, e := range events {
		c.log.Warn(e.String(), "event", e.ID, "vip", e.Addr, "name", e.Name.String())
		c.cfg.OnEvent(e)
	}
}

// transact sends m from ep to server and waits for its final answer: a WACK extends
// the wait by its TTL; each try waits Timeout; up to Retries tries, all before
// deadline (zero: none) and while ctx lasts. The transaction id is assigned here.
func (c *Client) transact(ctx context.Context, ep Endpoint, server netip.AddrPort, m *nbns.Message, deadline time.Time) (*nbns.Message, error) {
	select {
	case c.shared.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-c.shared.slots }()
	ch, done := c.open(ep, m)
	defer done()
	b, err := m.AppendPack(nil)
	if err != nil {
		return nil, err
	}
	clock := c.cfg.Clock
	for try := 1; try <= c.cfg.Retries; try++ {
		wait := c.cfg.Timeout
		if !deadline.IsZero() {
			left := deadline.Sub(clock.Now())
			if left <= 0 {
				break
			}
			wait = min(wait, left)
		}
		if err := ep.Send(b, server); err != nil {
			return nil, fmt.Errorf("send %v to %v from %v: %w", m.Opcode, server, ep.Addr(), err)
		}
		timer := clock.After(wait)
	wait:
		for {
			select {
			case p := <-ch:
				if p.From.Addr() != server.Addr() {
					continue // not from the server we asked
				}
				c.reachable(server)
				if p.Msg.Opcode != nbns.OpWACK {
					return p.Msg, nil
				}
				ttl := uint32(0)
				if len(p.Msg.Answers) > 0 {
					ttl = p.Msg.Answers[0].TTL
				}
				wack := time.Duration(ttl)*time.Second + c.cfg.Timeout
				if !deadline.IsZero() {
					wack = min(wack, deadline.Sub(clock.Now()))
				}
				timer = clock.After(wack)
			case <-timer:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return nil, fmt.Errorf("%v of %v to %v from %v: %w", m.Opcode, question(m), server, ep.Addr(), errNoAnswer)
}

func question(m *nbns.Message) string {
	if len(m.Questions) == 0 {
		return "?"
	}
	return m.Questions[0].Name.String()
}

// reachable clears a server's unreachable mark when it answers again.
func (c *Client) reachable(server netip.AddrPort) {
	if c.shared.mark(server, false) {
		c.log.Info("WINS server answers again", "server", server)
	}
}

// noAnswer reports an unreachable server once per outage and Shared (event 1078).
func (c *Client) noAnswer(r *reg) {
	if c.shared.mark(r.server, true) {
		e := Event{ID: EventWINSFailed, Name: r.name, Addr: r.ep.Addr(), Server: r.server, Tries: c.cfg.Retries}
		c.log.Warn(e.String(), "event", e.ID, "vip", e.Addr, "server", r.server)
		c.cfg.OnEvent(e)
	}
}
