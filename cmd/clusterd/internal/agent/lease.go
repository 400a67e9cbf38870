package agent

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/consensus/lease"
	"github.com/clusterd/clusterd/resource/sockopt"
)

// leases runs the lease protocol for the agent: this node's holder side (renewing its
// claims with every voter) and, if it is a voter, the voter side. It also serves
// liveness: the leader counts a node alive while it heard a renewal from it within
// Lease+Margin.
type leases struct {
	self   string
	t      lease.Timers
	log    *slog.Logger
	now    func() time.Duration                    // CLOCK_BOOTTIME
	kick   chan struct{}                           // renew at once (claims changed)
	onGain func()                                  // a claim became confirmed, or a lease ran out: reconcile
	onDown func(node string, silent time.Duration) // a node stopped renewing (seen on this voter)
	fence  func(deadline time.Duration)
	expiry chan time.Duration // the next time a held lease runs out

	mu     sync.Mutex // guards the fields below
	holder *lease.Holder
	voter  *lease.Voter
	state  consensus.State // the replicated state the voter judges claims against
	gen    uint64          // changes with state: the voter's answers may differ
	// lastHandled keeps the voter's clock monotonic: renewals are handled as of
	// their read time, and the loop may take them out of order with its own.
	lastHandled time.Duration
	// stalledUntil: this loop itself ran late (a tick gap over stallGap), so renewals
	// it has not taken in yet may be waiting in its queue; until then no node counts
	// as down on its word.
	stalledUntil time.Duration
	held         map[string]uint64
	heldGen      uint64               // counts SetHeld calls: a reader's copy of held is current while it matches
	probe        map[lease.Claim]bool // takeovers to probe before adding, until held
	// claimsDirty: state or held set changed since the claims were last computed.
	claimsDirty bool
	// missing counts claims the kernel does not hold yet (valid unless missingDirty):
	// with it, a round whose claims all share one deadline costs no pass over them.
	missing      int
	missingDirty bool
	byIP         map[netip.Addr]string // resource by address, for the add and announce checks
	changed      bool                  // replies taken in since the last afterChange
	pending      int                   // datagrams queued for the loop
	alive        map[string]bool       // last published liveness
	changes      chan struct{}
}

func newLeases(self string, t lease.Timers, log *slog.Logger) *leases {
	var b [8]byte
	rand.Read(b[:])
	now := lease.Boottime
	return &leases{
		self: self, t: t, log: log, now: now,
		kick:    make(chan struct{}, 1),
		expiry:  make(chan time.Duration, 1),
		holder:  lease.NewHolder(t, self, binary.LittleEndian.Uint64(b[:])),
		voter:   lease.NewVoter(t, now()),
		held:    map[string]uint64{},
		alive:   map[string]bool{},
		changes: make(chan struct{}, 1),
		onGain:  func() {},
		onDown:  func(string, time.Duration) {},
		fence:   func(time.Duration) {},
	}
}

// leaseAddr is where a node's lease protocol listens: its raft host, raft port + 1.
func leaseAddr(raftAddr string) (string, error) {
	host, port, err := net.SplitHostPort(raftAddr)
	if err != nil {
		return "", err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p >= 65535 {
		return "", fmt.Errorf("raft port %q leaves no room for the lease port (raft port + 1)", port)
	}
	return net.JoinHostPort(host, strconv.Itoa(p+1)), nil
}

// startupGrace is how long a voter that just started counts a node it has not heard
// from yet as alive: when a whole cluster restarts, agents come up a few hundred
// milliseconds apart, and none should fail the others over for that.
const startupGrace = 3 * time.Second

// Alive reports whether node renewed with this voter within Lease+Margin: by then
// its leases have run out, and the voters free its addresses. While this node's own
// loop is catching up after a stall, every node counts as alive.
func (l *leases) Alive(node string) bool {
	if node == l.self {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.now() < l.stalledUntil {
		return true
	}
	heard, ever := l.voter.Heard(node)
	if !ever {
		return l.now()-heard < startupGrace
	}
	return l.now()-heard < l.t.Lease+l.t.Margin
}

// noteLoopGap records the time between two Renew ticks of the lease loop: a gap
// over stallGap means the loop itself was late (a busy or starved agent), so the
// silence it sees may be its own; liveness judgements wait Lease+Margin more.
func (l *leases) noteLoopGap(gap time.Duration) {
	if gap <= l.stallGap() {
		return
	}
	l.mu.Lock()
	l.stalledUntil = max(l.stalledUntil, l.now()+l.t.Lease+l.t.Margin)
	l.mu.Unlock()
}

func (l *leases) stallGap() time.Duration { return l.t.Renew + l.t.Lease/2 }

// Silent returns how long ago this voter last heard node.
func (l *leases) Silent(node string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	heard, _ := l.voter.Heard(node)
	return l.now() - heard
}

// Changes is notified when a node's liveness changes.
func (l *leases) Changes() <-chan struct{} { return l.changes }

// MayHold reports whether this node's lease on the resource at epoch runs.
func (l *leases) MayHold(resource string, epoch uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder.MayHold(lease.Claim{Resource: resource, Epoch: epoch}, l.now())
}

// SetHeld records what the kernel holds now (resource → epoch); claims keep listing
// an address until it is gone, so voters never see it released early.
func (l *leases) SetHeld(held map[string]uint64) {
	l.mu.Lock()
	l.held = held
	l.heldGen++
	l.claimsDirty, l.missingDirty = true, true
	for c := range l.probe {
		if e, ok := held[c.Resource]; ok && e == c.Epoch {
			delete(l.probe, c)
		}
	}
	l.mu.Unlock()
	l.renewSoon()
}

func (l *leases) renewSoon() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// setState installs a new replicated state and recomputes the claims.
func (l *leases) setState(st consensus.State) {
	byIP := make(map[netip.Addr]string, len(st.Resources))
	for name, r := range st.Resources {
		byIP[r.Address.Addr()] = name
	}
	l.mu.Lock()
	now := l.now()
	for name := range l.state.Resources {
		if _, ok := st.Resources[name]; !ok {
			l.voter.Forget(name, now) // deleted: drop the voter's record once it is safe
		}
	}
	l.state, l.byIP = st, byIP
	l.gen++
	l.claimsDirty = true
	l.mu.Unlock()
	l.renewSoon()
}

// claims: every resource assigned to this node (online), plus what it still holds.
func (l *leases) claimsLocked() []lease.Claim {
	seen := map[string]bool{}
	var cs []lease.Claim
	for name, asg := range l.state.Assignments {
		if r, ok := l.state.Resources[name]; ok && asg.Node == l.self && !r.Offline {
			cs = append(cs, lease.Claim{Resource: name, Epoch: asg.Epoch})
			seen[name] = true
		}
	}
	for name, epoch := range l.held {
		if !seen[name] {
			cs = append(cs, lease.Claim{Resource: name, Epoch: epoch})
		}
	}
	return cs
}

func (l *leases) votersLocked(servers []consensus.Server) []string {
	var ids []string
	for _, s := range servers {
		if s.Voter {
			ids = append(ids, s.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// leaseReadBuffer is the lease socket's receive buffer. A claim set of 2,500
// addresses travels as about ten 8 KB parts; after a failover every survivor sends a
// new set to every voter at once, and the default 208 KB buffer dropped parts: each
// drop cost a resend Lease/3 later (seconds of takeover in the relaxed profile).
const leaseReadBuffer = 8 << 20

// Run owns the UDP socket and the protocol's loop.
func (l *leases) Run(ctx context.Context, a *Agent) error {
	addr, err := leaseAddr(a.cfg.RaftAddr)
	if err != nil {
		return err
	}
	conn, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("listen for leases on %s: %w (the lease port is the raft port + 1; free it or move --raft-addr)", addr, err)
	}
	defer conn.Close()
	if err := sockopt.ConnReadBuffer(conn.(*net.UDPConn), leaseReadBuffer); err != nil {
		l.log.Warn("lease socket: receive buffer left at the system default; claim sets sent in parts may be dropped in bursts", "err", err)
	}
	type packet struct {
		b    []byte
		from net.Addr
		at   time.Duration // when it was read: a renewal counts from then, not from when a busy loop got to it
	}
	packets := make(chan packet, 256)
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		buf := make([]byte, lease.MaxDatagram)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				continue
			}
			select {
			case packets <- packet{append([]byte(nil), buf[:n]...), from, l.now()}:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { <-readDone }()

	changes := a.store.Changes()
	tick := time.NewTicker(l.t.Renew)
	defer tick.Stop()
	expire := time.NewTimer(time.Hour)
	defer expire.Stop()
	st, _ := a.store.State()
	l.setState(st)
	lastTick := l.now()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changes:
			st, _ := a.store.State()
			l.setState(st)
			continue
		case <-l.kick:
			l.round(conn, a)
		case <-tick.C:
			now := l.now()
			l.noteLoopGap(now - lastTick)
			a.lag.Note(now-lastTick, l.t.Renew)
			lastTick = now
			l.round(conn, a)
			l.publish(a.nodeIDs())
		case p := <-packets:
			l.mu.Lock()
			l.pending = len(packets)
			l.mu.Unlock()
			l.receive(conn, p.b, p.from, p.at, a)
		case at := <-l.expiry:
			expire.Reset(max(at-l.now(), 0))
		case <-expire.C:
			l.onGain() // a held lease ran out: the reconciler drops the address now
		}
	}
}

// round sends this node's renewals to every voter.
func (l *leases) round(conn net.PacketConn, a *Agent) {
	servers, err := a.store.Servers()
	if err != nil {
		return
	}
	addrs := map[string]string{}
	for _, s := range servers {
		addrs[s.ID] = s.RaftAddr
	}
	l.mu.Lock()
	l.holder.SetVoters(l.votersLocked(servers))
	if l.claimsDirty {
		if l.holder.SetClaims(l.claimsLocked()) {
			l.missingDirty = true
		}
		l.claimsDirty = false
	}
	out := l.holder.Round(l.now())
	l.mu.Unlock()
	if a.met != nil {
		a.met.renewalsSent.Add(float64(len(out)))
	}
	for _, o := range out {
		if o.Voter == l.self {
			l.handleRenewal(conn, o.Renewal, nil, l.now(), a)
			continue
		}
		b, err := lease.MarshalRenewal(o.Renewal)
		if err != nil {
			l.log.Error("lease renewal not sent", "err", err)
			continue
		}
		to, err := leaseAddr(addrs[o.Voter])
		if err != nil {
			continue
		}
		ua, err := net.ResolveUDPAddr("udp", to)
		if err != nil {
			continue
		}
		conn.WriteTo(b, ua)
	}
	l.afterChange()
}

func (l *leases) receive(conn net.PacketConn, b []byte, from net.Addr, at time.Duration, a *Agent) {
	defer l.maybeAfterChange()
	ren, rep, err := lease.Unmarshal(b)
	if err != nil {
		l.log.Debug("bad lease datagram", "from", from.String(), "err", err)
		return
	}
	if ren != nil {
		l.handleRenewal(conn, *ren, from, at, a)
		return
	}
	l.mu.Lock()
	l.holder.Receive(*rep)
	retry := l.pendingDeniedLocked(rep.Denied)
	l.changed = true
	l.mu.Unlock()
	if retry {
		// A claim this node waits for was denied (the voter is a commit behind, or
		// the old holder's lease still runs): ask again soon, not a whole Renew later.
		time.AfterFunc(l.t.Renew/5, l.renewSoon)
	}
}

// maybeAfterChange runs afterChange once a batch of replies has been taken in: at
// once when no more datagrams wait, so a round's replies from all voters cost one
// pass over the claims, not one each.
func (l *leases) maybeAfterChange() {
	l.mu.Lock()
	run := l.changed && l.pending == 0
	if run {
		l.changed = false
	}
	l.mu.Unlock()
	if run {
		l.afterChange()
	}
}

// pendingDeniedLocked reports whether a denied claim is assigned to this node but not
// held yet (a takeover in progress).
func (l *leases) pendingDeniedLocked(denied []string) bool {
	for _, name := range denied {
		asg, ok := l.state.Assignments[name]
		if _, held := l.held[name]; ok && asg.Node == l.self && !held {
			return true
		}
	}
	return false
}

// handleRenewal answers a renewal as a voter (from nil: our own).
// at is when the renewal arrived (its read time: at or after its send time, so
// confirming as of then keeps the voter's Lease+Margin wait sound).
func (l *leases) handleRenewal(conn net.PacketConn, r lease.Renewal, from net.Addr, at time.Duration, a *Agent) {
	l.mu.Lock()
	st := l.state
	at = max(at, l.lastHandled)
	l.lastHandled = at
	rep, answer := l.voter.Handle(at, r, l.gen, func(res string) (string, uint64, bool) {
		asg, ok := st.Assignments[res]
		if !ok || asg.Node == "" {
			return "", 0, false
		}
		if rr, ok := st.Resources[res]; !ok || rr.Offline {
			return "", 0, false
		}
		return asg.Node, asg.Epoch, true
	})
	rep.Voter = l.self
	if a.met != nil {
		a.met.renewalsRecv.Inc()
	}
	if !answer {
		l.mu.Unlock()
		return // a part of a claim set still arriving
	}
	if from == nil {
		l.holder.Receive(rep)
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	if b, err := lease.MarshalReply(rep); err == nil {
		conn.WriteTo(b, from)
	}
}

// afterChange tells the reconciler and the fencing companion what changed.
func (l *leases) afterChange() {
	l.mu.Lock()
	latest, next, gained := l.deadlinesLocked(l.now())
	l.mu.Unlock()
	l.fence(latest)
	if next > 0 {
		select {
		case <-l.expiry:
		default:
		}
		l.expiry <- next
	}
	if gained {
		l.onGain()
	}
}

// deadlinesLocked returns the latest deadline of any claim (for the companion), the
// earliest of a held one still running (to drop it on time), and whether the
// reconciler has work: a claim newly confirmed but not held, or held but run out.
func (l *leases) deadlinesLocked(now time.Duration) (latest, next time.Duration, gained bool) {
	claims := l.holder.Claims()
	if d, ok := l.holder.Uniform(); ok {
		if l.missingDirty {
			l.missing = 0
			for _, c := range claims {
				if _, held := l.held[c.Resource]; !held {
					l.missing++
				}
			}
			l.missingDirty = false
		}
		heldAny := len(claims) > l.missing
		if d > now {
			if heldAny {
				next = d
			}
			return d, next, l.missing > 0
		}
		return d, 0, heldAny
	}
	for _, c := range claims {
		d := l.holder.Deadline(c)
		if d > latest {
			latest = d
		}
		_, held := l.held[c.Resource]
		switch {
		case d > now && !held:
			gained = true // newly confirmed: the reconciler may add it
		case held && d <= now:
			gained = true // ran out: the reconciler drops it
		case held && (next == 0 || d < next):
			next = d
		}
	}
	return latest, next, gained
}

func (l *leases) publish(ids []string) {
	changed := false
	now := map[string]bool{}
	for _, id := range ids {
		now[id] = l.Alive(id)
	}
	l.mu.Lock()
	var down []string
	for id, up := range now {
		if was, known := l.alive[id]; was != up {
			changed = true
			if known && was && !up {
				down = append(down, id)
			}
		}
	}
	l.alive = now
	l.mu.Unlock()
	for _, id := range down {
		l.onDown(id, l.Silent(id))
	}
	if changed {
		select {
		case l.changes <- struct{}{}:
		default:
		}
	}
}

// heldNames returns a copy of what the kernel holds, as last reported, and its
// generation.
func (l *leases) heldNames() (map[string]uint64, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]uint64, len(l.held))
	for k, v := range l.held {
		out[k] = v
	}
	return out, l.heldGen
}

// heldGeneration changes whenever what the kernel holds is reported again.
func (l *leases) heldGeneration() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.heldGen
}

// reachable reports whether a majority of voters answered a recent renewal.
func (l *leases) reachable() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holder.Reachable(l.now())
}

// stateView returns the replicated state as the lease loop last saw it. It is shared:
// callers must not modify it.
func (l *leases) stateView() consensus.State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}
