package netbios

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// B-node: names claimed by broadcast registration on the subnet, defended against
// other nodes' broadcast registrations, and broadcast name queries answered. A
// socket bound to ADDR:137 does not receive subnet broadcasts, so one Listener per
// subnet reads BCAST:137 and hands requests to the responders of that subnet.

// claim broadcasts a registration of the name from r's address BroadcastRetries
// times; an objection (a negative registration response from the holder) puts the
// name in conflict, naming the objector. Silence means the name is ours.
func (u *unit) claim(ctx context.Context, r *reg) {
	c := u.c
	m := nbns.NewRegistration(0, u.name, 0, u.entry(r.ep), true) // TTL 0 as nmbd sends (vector 10)
	objection, err := c.collect(ctx, r.ep, u.server, m)
	if err != nil {
		if ctx.Err() == nil {
			c.log.Error("broadcast registration failed", "vip", r.ep.Addr(), "name", u.name.String(), "err", err)
			c.mu.Lock()
			r.attempts++
			r.state, r.due = StateFailed, c.cfg.Clock.Now().Add(u.backoff(r.attempts))
			c.mu.Unlock()
		}
		return
	}
	now := c.cfg.Clock.Now()
	if objection != nil {
		u.mark(r, objection.Msg.RCode, []netip.Addr{objection.From.Addr()}, now)
		return
	}
	c.mu.Lock()
	was := r.state
	r.state, r.attempts, r.ttl, r.expires = StateRegistered, 0, 0, time.Time{}
	r.refresh, r.verify = never, never // B-nodes neither refresh nor verify
	if was == StateConflict {
		c.setConflictLocked(r, false)
	}
	c.mu.Unlock()
}

// collect sends the broadcast m BroadcastRetries times, BroadcastInterval apart, and
// returns the first negative answer, or nil when nobody objected.
func (c *Client) collect(ctx context.Context, ep Endpoint, bcast netip.AddrPort, m *nbns.Message) (*Packet, error) {
	ch, done := c.open(ep, m)
	defer done()
	b, err := m.AppendPack(nil)
	if err != nil {
		return nil, err
	}
	for try := 0; try < c.cfg.BroadcastRetries; try++ {
		if err := ep.Send(b, bcast); err != nil {
			return nil, err
		}
		timer := c.cfg.Clock.After(c.cfg.BroadcastInterval)
	wait:
		for {
			select {
			case p := <-ch:
				if p.Msg.Opcode == nbns.OpRegister && p.Msg.RCode != nbns.RCodeOK {
					return &p, nil
				}
			case <-timer:
				break wait
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return nil, nil
}

// open assigns m a transaction id and registers a channel for its answers; done
// removes it.
func (c *Client) open(ep Endpoint, m *nbns.Message) (chan Packet, func()) {
	ch := make(chan Packet, 4)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		c.nextID++
		if _, busy := c.pending[txKey{ep.Addr(), c.nextID}]; !busy {
			break
		}
	}
	m.ID = c.nextID
	k := txKey{ep.Addr(), m.ID}
	c.pending[k] = ch
	return ch, func() {
		c.mu.Lock()
		delete(c.pending, k)
		c.mu.Unlock()
	}
}

// releaseBroadcast announces the release of the name from every address that
// claimed it; nobody answers a broadcast release.
func (u *unit) releaseBroadcast() {
	c := u.c
	for _, r := range u.regs {
		c.mu.Lock()
		claimed := r.state == StateRegistered
		c.mu.Unlock()
		if !claimed {
			continue
		}
		b, err := nbns.NewRelease(0, u.name, u.entry(r.ep), true).AppendPack(nil)
		if err == nil {
			err = r.ep.Send(b, u.server)
		}
		if err != nil {
			c.log.Warn("broadcast release failed", "vip", r.ep.Addr(), "name", u.name.String(), "err", err)
			continue
		}
		c.mu.Lock()
		r.state = StateReleased
		c.mu.Unlock()
	}
}

// Listener reads one subnet's broadcasts (a socket from DialBroadcast) and hands
// the requests to the responders of the cluster addresses in that subnet.
type Listener struct {
	conn net.PacketConn
	log  *slog.Logger

	mu sync.Mutex // guards rs
	rs []*Responder
}

// NewListener returns a listener on conn; it starts nothing.
func NewListener(conn net.PacketConn, log *slog.Logger) *Listener {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Listener{conn: conn, log: log}
}

// Add makes r answer the subnet's broadcasts.
func (l *Listener) Add(r *Responder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.rs = append(l.rs, r)
}

// Remove stops handing broadcasts to r.
func (l *Listener) Remove(r *Responder) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, x := range l.rs {
		if x == r {
			l.rs = append(l.rs[:i], l.rs[i+1:]...)
			return
		}
	}
}

// Run reads broadcasts until ctx is done.
func (l *Listener) Run(ctx context.Context) error {
	l.conn.SetReadDeadline(time.Time{})
	stop := context.AfterFunc(ctx, func() { l.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, readBuffer)
	for {
		n, from, err := l.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return err
		}
		var m nbns.Message
		if m.Unpack(buf[:n]) != nil || m.Response || m.Flags&nbns.FlagB == 0 {
			continue
		}
		src := fromNetAddr(from)
		l.mu.Lock()
		rs := append([]*Responder(nil), l.rs...)
		l.mu.Unlock()
		ours := false
		for _, r := range rs {
			ours = ours || r.Addr() == src.Addr()
		}
		if ours {
			continue // our own claims and releases
		}
		for _, r := range rs {
			r.broadcast(&m, src)
		}
	}
}

// broadcast handles a request a Listener read from the subnet: a query for one of
// our names is answered from this address; a broadcast registration of one of our
// names by another address is refused with ACT_ERR (RFC 1002 5.1.1: the holder
// defends its name) and reported, naming the other party.
func (r *Responder) broadcast(req *nbns.Message, from netip.AddrPort) {
	if len(req.Questions) != 1 {
		return
	}
	var reply *nbns.Message
	var ev *Event
	switch req.Opcode {
	case nbns.OpQuery:
		reply = r.answer(req)
	case nbns.OpRegister, nbns.OpMultiHomedRegister:
		if len(req.Additionals) == 0 || len(req.Additionals[0].NB) == 0 || req.Additionals[0].NB[0].Addr == r.addr {
			return
		}
		k := key(req.Questions[0].Name)
		r.mu.Lock()
		defend := r.hasLocked(k) && !r.conflict[k]
		r.mu.Unlock()
		if !defend {
			return
		}
		reply = nbns.NewRegistrationResponse(req, nbns.RCodeActive, 0)
		ev = &Event{ID: EventNameConflict, Name: req.Questions[0].Name, Addr: r.addr, Server: from,
			Other: []netip.Addr{req.Additionals[0].NB[0].Addr}, Defended: true}
	}
	if reply == nil {
		return
	}
	b, err := reply.AppendPack(nil)
	if err == nil {
		err = r.Send(b, from)
	}
	if err != nil {
		r.log.Debug("cannot answer a broadcast", "to", from, "err", err)
	}
	if ev != nil {
		r.log.Warn(ev.String(), "event", ev.ID)
		r.onEvent(*ev)
	}
}
