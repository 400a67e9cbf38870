package netbios

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// Defaults of ClientConfig, with where they come from.
const (
	// DefaultRegisterTTL is the TTL asked for: 3 days, what nmbd asks (vectors 1, 3).
	// Samba clamps it to its min/max wins ttl (6 h / 6 d by default).
	DefaultRegisterTTL = 259200
	// DefaultTimeout and DefaultRetries: a request is sent up to 3 times, 2 s apart,
	// before the server counts as unreachable. RFC 1002 has 5 s x 3
	// (UCAST_REQ_RETRY_TIMEOUT/COUNT); 2 s keeps a detach with a dead WINS short.
	DefaultTimeout = 2 * time.Second
	DefaultRetries = 3
	// DefaultBackoffMin/Max bound the wait before retrying an unreachable or
	// refusing server (doubling each time).
	DefaultBackoffMin = 5 * time.Second
	DefaultBackoffMax = 5 * time.Minute
	// DefaultConflictRetry is how often a name in conflict is tried again.
	DefaultConflictRetry = 5 * time.Minute
	// DefaultVerifyInterval is how often a registered name is looked up on the
	// server, to re-register it when someone else's release dropped the record
	// (Samba drops a whole multi-homed record on the first release).
	DefaultVerifyInterval = 5 * time.Minute
	// DefaultReleaseTimeout bounds the releases after Run's context ends, so a dead
	// WINS server cannot hold up a failover.
	DefaultReleaseTimeout = 4 * time.Second
	// DefaultChallengeCheck is how long after a WINS server's challenge the name is
	// looked up to see who registered: the server answers the registrant as soon as
	// the holder answers the challenge.
	DefaultChallengeCheck = time.Second
	// DefaultBroadcastInterval and DefaultBroadcastRetries: a broadcast registration
	// is sent 3 times 250 ms apart and stands if nobody objects (RFC 1002
	// BCAST_REQ_RETRY_TIMEOUT and BCAST_REQ_RETRY_COUNT).
	DefaultBroadcastInterval = 250 * time.Millisecond
	DefaultBroadcastRetries  = 3
	// DefaultRefreshSpread spreads refreshes and verifications: each is due at a
	// random point in the last tenth before half the TTL (the verify interval), so
	// 2,000 names registered within a second do not refresh within a second ever
	// after (a burst of 2,000 transactions every TTL/2 on the agent and the server).
	DefaultRefreshSpread = 0.1
	// DefaultMaxInFlight bounds concurrent requests per client (or per Shared), so 1,000 addresses coming up or going down do not overflow
	// the server's socket buffer (about 270 datagrams with Linux's default 208 KiB)
	// with one burst.
	DefaultMaxInFlight = 32
)

// Endpoint is one cluster address names are registered from: its socket, the
// responses received on it, and the conflict marks of its responder. *Responder
// implements it; the responder must be running before Client.Run, since the WINS
// server challenges the first address of a name when a second one registers.
type Endpoint interface {
	Addr() netip.Addr
	Send(b []byte, to netip.AddrPort) error
	Received() <-chan Packet
	SetConflict(n nbns.Name, in bool)
}

// ClientConfig configures a WINS client. Zero durations and counts take the
// defaults above.
type ClientConfig struct {
	Servers []netip.AddrPort // WINS servers, port 137
	// Broadcast, when valid, is the subnet broadcast address (port 137): names are
	// also claimed by broadcast registration (B-node, and M/H-node fallback).
	Broadcast         netip.AddrPort
	Endpoints         []Endpoint    // every cluster address that carries the names
	Names             []nbns.Name   // unique names, registered from every endpoint
	NodeType          nbns.NodeType // P, M or H with WINS
	TTL               uint32
	Timeout           time.Duration
	Retries           int
	BackoffMin        time.Duration
	BackoffMax        time.Duration
	ConflictRetry     time.Duration
	VerifyInterval    time.Duration // negative disables verification
	ReleaseTimeout    time.Duration
	RefreshSpread     float64 // fraction; negative: refresh exactly at half the TTL
	MaxInFlight       int     // ignored when Shared is set
	Shared            *Shared // one per node, given to every client; nil: one per client
	ChallengeCheck    time.Duration
	BroadcastInterval time.Duration
	BroadcastRetries  int
	// Peers lists the other cluster addresses (on other nodes) that legitimately
	// carry name n; any other address the server lists for it is a conflict. Nil: none.
	Peers   func(n nbns.Name) []netip.Addr
	Clock   Clock
	Logger  *slog.Logger
	OnEvent func(Event) // called from the client's goroutines; must not block for long
	// OnChange is called (from the client's goroutines, without locks held) after a
	// name changed state, so a status served elsewhere can be refreshed; it must
	// not block. Nil: nothing.
	OnChange func()
}

// State is where one name stands on one WINS server for one address.
type State int

// Name states, as `clusterd status` shows them.
const (
	StateRegistering State = iota
	StateRegistered
	StateRefreshing // registered, a refresh is overdue (server unreachable)
	StateConflict
	StateFailed // unreachable or refused before ever registering, or expired
	StateReleased
)

func (s State) String() string {
	return [...]string{"registering", "registered", "refreshing", "conflict", "failed", "released"}[s]
}

// NameStatus is one row of Client.Status.
type NameStatus struct {
	Name    nbns.Name
	Addr    netip.Addr
	Server  netip.AddrPort
	State   State
	TTL     uint32    // granted by the server
	Expires time.Time // when the server drops the name unless refreshed
}

// Client registers names with WINS servers from every endpoint (multi-homed,
// opcode 0xF), refreshes them at half the granted TTL, verifies them, reports
// conflicts and unreachable servers, and releases every name from every endpoint
// when Run's context ends. Run owns every goroutine.
type Client struct {
	cfg    ClientConfig
	log    *slog.Logger
	shared *Shared

	units   []*unit
	wake    chan struct{} // a unit's woken flag was set
	version atomic.Uint64 // counts name state changes (Version)

	mu      sync.Mutex // guards the fields below
	regs    []*reg
	pending map[txKey]chan Packet
	nextID  uint16
}

// reg is one (server, endpoint, name) registration. Its fields are guarded by
// Client.mu; only its unit's goroutine starts transactions for it.
type reg struct {
	server   netip.AddrPort
	ep       Endpoint
	name     nbns.Name
	state    State
	ttl      uint32
	expires  time.Time
	refresh  time.Time // when to refresh
	verify   time.Time // when to look the name up
	due      time.Time // when to retry registering (registering, failed, conflict)
	attempts int       // failed attempts in a row, for the backoff
	other    []netip.Addr
	// challenged is set when the server challenged this address for the name while
	// no registration of ours was under way: someone else is registering it.
	challenged bool
	u          *unit
}

type txKey struct {
	ep netip.Addr
	id uint16
}

// NewClient returns a client; it starts nothing.
func NewClient(cfg ClientConfig) *Client {
	d := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	d(&cfg.Timeout, DefaultTimeout)
	d(&cfg.BackoffMin, DefaultBackoffMin)
	d(&cfg.BackoffMax, DefaultBackoffMax)
	d(&cfg.ConflictRetry, DefaultConflictRetry)
	d(&cfg.VerifyInterval, DefaultVerifyInterval)
	d(&cfg.ReleaseTimeout, DefaultReleaseTimeout)
	d(&cfg.ChallengeCheck, DefaultChallengeCheck)
	d(&cfg.BroadcastInterval, DefaultBroadcastInterval)
	if cfg.BroadcastRetries <= 0 {
		cfg.BroadcastRetries = DefaultBroadcastRetries
	}
	if cfg.RefreshSpread == 0 {
		cfg.RefreshSpread = DefaultRefreshSpread
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultRegisterTTL
	}
	if cfg.Retries <= 0 {
		cfg.Retries = DefaultRetries
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Peers == nil {
		cfg.Peers = func(nbns.Name) []netip.Addr { return nil }
	}
	if cfg.OnEvent == nil {
		cfg.OnEvent = func(Event) {}
	}
	if cfg.OnChange == nil {
		cfg.OnChange = func() {}
	}
	c := &Client{
		cfg:     cfg,
		log:     cfg.Logger,
		shared:  cfg.Shared,
		pending: map[txKey]chan Packet{},
		wake:    make(chan struct{}, 1),
		nextID:  uint16(rand.N(0x10000)),
	}
	// One unit per (server, name) registers the name from every endpoint in turn,
	// as nmbd does, and releases it from all of them.
	if c.shared == nil {
		c.shared = NewShared(cfg.MaxInFlight)
	}
	servers := cfg.Servers
	if cfg.Broadcast.IsValid() {
		servers = append(slices.Clip(servers), cfg.Broadcast)
	}
	for _, s := range servers {
		for _, n := range cfg.Names {
			u := &unit{c: c, server: s, name: n, bcast: s == cfg.Broadcast}
			for _, ep := range cfg.Endpoints {
				r := &reg{server: s, ep: ep, name: n, u: u}
				u.regs = append(u.regs, r)
				c.regs = append(c.regs, r)
			}
			c.units = append(c.units, u)
		}
	}
	return c
}

// Shared is what a node's clients share: a bound on WINS requests in flight, and
// which servers are unreachable, so an outage is reported (event 1078) once per
// node rather than once per cluster address.
type Shared struct {
	slots chan struct{}

	mu          sync.Mutex // guards unreachable
	unreachable map[netip.AddrPort]bool
}

// NewShared allows n requests in flight (n ≤ 0: DefaultMaxInFlight).
func NewShared(n int) *Shared {
	if n <= 0 {
		n = DefaultMaxInFlight
	}
	return &Shared{slots: make(chan struct{}, n), unreachable: map[netip.AddrPort]bool{}}
}

// mark records whether server answers and reports whether that changed.
func (s *Shared) mark(server netip.AddrPort, down bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	was := s.unreachable[server]
	if down {
		s.unreachable[server] = true
	} else {
		delete(s.unreachable, server)
	}
	return was != down
}

// changed counts a name state change and tells OnChange.
func (c *Client) changed() {
	c.version.Add(1)
	c.cfg.OnChange()
}

// Version changes whenever a name changes state, so a caller can keep what it made
// of Status until it does.
func (c *Client) Version() uint64 { return c.version.Load() }

// Status lists every (name, address, server) and its state.
func (c *Client) Status() []NameStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]NameStatus, 0, len(c.regs))
	for _, r := range c.regs {
		out = append(out, NameStatus{Name: r.name, Addr: r.ep.Addr(), Server: r.server, State: r.state, TTL: r.ttl, Expires: r.expires})
	}
	return out
}

// Run registers, refreshes and verifies until ctx ends, then releases every name
// from every endpoint on every server (bounded by ReleaseTimeout) and returns the
// releases that failed. Keep the endpoints' responders running until Run returns:
// the answers arrive through them.
//
// One scheduler per client: idle, a client is this goroutine and one timer; the
// work that is due (a registration, refresh or lookup per name and server) runs on
// a goroutine while it waits for its answer. With one endpoint (the daemon's case)
// the scheduler also reads the endpoint's packets itself.
func (c *Client) Run(ctx context.Context) error {
	inner, stop := context.WithCancel(context.Background())
	defer stop()
	var dispatchers sync.WaitGroup
	var recv <-chan Packet
	if len(c.cfg.Endpoints) == 1 {
		recv = c.cfg.Endpoints[0].Received()
	} else {
		for _, ep := range c.cfg.Endpoints {
			dispatchers.Go(func() { c.dispatch(inner, ep) })
		}
	}
	c.schedule(ctx, recv)
	if recv != nil { // the releases need their answers
		ep := c.cfg.Endpoints[0]
		dispatchers.Go(func() { c.dispatch(inner, ep) })
	}
	err := c.releaseAll()
	stop()
	dispatchers.Wait()
	return err
}

// schedule runs each unit's due work until ctx ends, and hands recv's packets (if
// any) to the transactions waiting for them.
func (c *Client) schedule(ctx context.Context, recv <-chan Packet) {
	type result struct {
		i    int
		next time.Time
	}
	clock := c.cfg.Clock
	next := make([]time.Time, len(c.units)) // zero: due now
	running := make([]bool, len(c.units))
	done := make(chan result, len(c.units))
	var steps sync.WaitGroup
	defer steps.Wait() // they end with ctx
	var (
		timer   <-chan time.Time
		timerAt time.Time
	)
	for {
		now := clock.Now()
		wake := never
		for i, u := range c.units {
			if running[i] {
				continue
			}
			if u.woken.Swap(false) {
				next[i] = time.Time{}
			}
			if next[i].After(now) {
				if next[i].Before(wake) {
					wake = next[i]
				}
				continue
			}
			running[i] = true
			steps.Go(func() { done <- result{i, u.step(ctx)} })
		}
		switch {
		case wake.Equal(never):
			timer, timerAt = nil, time.Time{}
		case !wake.Equal(timerAt):
			timer, timerAt = clock.After(wake.Sub(now)), wake
		}
		select {
		case <-ctx.Done():
			return
		case r := <-done:
			running[r.i], next[r.i] = false, r.next
		case <-timer:
			timer, timerAt = nil, time.Time{}
		case <-c.wake:
		case p := <-recv:
			c.handle(c.cfg.Endpoints[0], p)
		}
	}
}

// releaseAll releases every unit, the servers in parallel (a dead one must not use
// up the others' time), the names of one server in turn, all within ReleaseTimeout.
func (c *Client) releaseAll() error {
	deadline := c.cfg.Clock.Now().Add(c.cfg.ReleaseTimeout)
	var groups [][]*unit
	for _, u := range c.units {
		if len(groups) == 0 || groups[len(groups)-1][0].server != u.server {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], u)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	run := func(g []*unit) {
		for _, u := range g {
			if err := u.release(deadline); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}
	}
	for _, g := range groups[min(1, len(groups)):] {
		wg.Go(func() { run(g) })
	}
	if len(groups) > 0 {
		run(groups[0])
	}
	wg.Wait()
	return errors.Join(errs...)
}

// early returns how much before d a periodic action is due: a random share of
// RefreshSpread × d.
func (c *Client) early(d time.Duration) time.Duration {
	if c.cfg.RefreshSpread <= 0 || d <= 0 {
		return 0
	}
	return time.Duration(rand.Float64() * c.cfg.RefreshSpread * float64(d))
}

func (c *Client) isOurs(a netip.Addr) bool {
	for _, ep := range c.cfg.Endpoints {
		if ep.Addr() == a {
			return true
		}
	}
	return false
}

// foreign lists the addresses in entries that are neither ours nor peers for n.
func (c *Client) foreign(n nbns.Name, entries []nbns.NBEntry) []netip.Addr {
	peers := c.cfg.Peers(n)
	var out []netip.Addr
	for _, e := range entries {
		if !c.isOurs(e.Addr) && !slices.Contains(peers, e.Addr) {
			out = append(out, e.Addr)
		}
	}
	return out
}

// setConflict marks or clears the responder's conflict flag for r's name; a mark
// stays while any server still reports the conflict. Call with c.mu held.
func (c *Client) setConflictLocked(r *reg, in bool) {
	if !in {
		for _, o := range c.regs {
			if o != r && o.ep == r.ep && o.name == r.name && o.state == StateConflict {
				return
			}
		}
	}
	r.ep.SetConflict(r.name, in)
}
