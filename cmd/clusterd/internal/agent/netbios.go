package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/netbios"
	"github.com/clusterd/clusterd/netbios/nbns"
	"github.com/clusterd/clusterd/resource"
)

// nbIfaces keeps the NetBIOS interface of every held cluster address that carries
// NetBIOS settings: attached after the address is up, detached (every name released
// from the address, on every WINS server) before it goes.
//
// The reconciler only tells it what is wanted (Sync, cheap: one index per state
// revision); Run's manager loop attaches outside the reconcile pass, so 1,000
// attaches neither stretch a pass nor come in a burst from it. Detach stays
// synchronous: the releases must leave while the address exists (Q184832). Run owns
// every goroutine.
type nbIfaces struct {
	log    *slog.Logger
	shared *netbios.Shared
	onEv   func(netbios.Event)
	// onChange, when set, is called from Run (debounced, see nbNotifyQuiet) after
	// a name changed state or interfaces were attached, so the reconciler refreshes
	// the status it serves instead of waiting for its resync.
	onChange func()

	kick  chan struct{} // Sync left attaches for the manager
	dirty chan struct{} // a name changed state
	peers atomic.Pointer[nbIndex]
	idx   *nbIndex // the reconciler's: Sync only

	mu        sync.Mutex // guards the fields below
	ctx       context.Context
	m         map[string]*nbIface     // by resource name
	failed    map[string]nbFailure    // attach failures, by resource name
	pending   map[string]nbSpec       // held, not attached yet: the manager's work
	releasing map[string]bool         // stale interfaces still releasing their names
	listeners map[netip.Addr]*nbBcast // B-node: one per subnet broadcast address
	closing   bool                    // Run is stopping: goroutines run inline, not on wg
	batch     chan struct{}           // closed and replaced after each attach batch (waitUp)
	wg        sync.WaitGroup
}

type nbIface struct {
	key        string
	addr       netip.Addr
	conn       net.PacketConn
	resp       *netbios.Responder
	client     *netbios.Client
	bcast      netip.Addr
	stopClient context.CancelFunc
	stopResp   context.CancelFunc
	clientDone chan struct{}
	respDone   chan struct{}
	// rows is what status made of client.Status at client.Version rowsAt (n.mu):
	// a reconcile pass asks for every held resource, and names rarely change.
	rows   []api.NameStatus
	rowsAt uint64
}

type nbFailure struct {
	key   string
	err   error
	next  time.Time
	delay time.Duration
}

type nbBcast struct {
	conn  net.PacketConn
	l     *netbios.Listener
	stop  context.CancelFunc
	users int
}

const (
	// nbRetryMin..nbRetryMax: attach retry backoff after a failure (event 1044), doubling.
	nbRetryMin = time.Second
	nbRetryMax = 30 * time.Second
	// nbNotifyQuiet and nbNotifyMax debounce the reconciler pokes after name state
	// changes: the status served lags the last registration by about nbNotifyQuiet
	// plus a pass, and a stream of changes pokes at most every nbNotifyMax (a pass
	// over 1,000 resources costs milliseconds of CPU the registrations need too).
	nbNotifyQuiet = 50 * time.Millisecond
	nbNotifyMax   = time.Second
)

// newNBIfaces: peers come from the index Sync builds per state revision; the state
// reader is no longer needed (kept for the constructor's caller).
func newNBIfaces(log *slog.Logger, onEvent func(netbios.Event)) *nbIfaces {
	return &nbIfaces{log: log, shared: netbios.NewShared(0), onEv: onEvent,
		kick: make(chan struct{}, 1), dirty: make(chan struct{}, 1),
		m: map[string]*nbIface{}, failed: map[string]nbFailure{}, pending: map[string]nbSpec{},
		releasing: map[string]bool{}, listeners: map[netip.Addr]*nbBcast{}, batch: make(chan struct{})}
}

// Run attaches what Sync asks for until ctx ends; then every interface is detached
// (names released) before Run returns.
func (n *nbIfaces) Run(ctx context.Context) error {
	n.mu.Lock()
	n.ctx = context.WithoutCancel(ctx)
	n.mu.Unlock()
	n.manage(ctx)
	n.mu.Lock()
	n.ctx = nil // attach nothing more
	clear(n.pending)
	n.mu.Unlock()
	n.detach(n.names(), 0)
	n.mu.Lock()
	n.closing = true // no wg.Go may race with the Wait below
	n.mu.Unlock()
	n.wg.Wait()
	return ctx.Err()
}

// manage is Run's loop: attach batches; change notifications debounced (one
// nbNotifyQuiet after the last change, at least every nbNotifyMax while changes
// keep coming), so 2,000 registrations cost a few reconcile passes, not 2,000.
func (n *nbIfaces) manage(ctx context.Context) {
	quiet, most := time.NewTimer(time.Hour), time.NewTimer(time.Hour)
	quiet.Stop()
	most.Stop()
	defer quiet.Stop()
	defer most.Stop()
	armed := false
	touch := func() {
		if !armed {
			armed = true
			most.Reset(nbNotifyMax)
		}
		quiet.Reset(nbNotifyQuiet)
	}
	fire := func() {
		armed = false
		quiet.Stop()
		most.Stop()
		if n.onChange != nil {
			n.onChange()
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.kick:
			if n.attachPending() > 0 {
				touch()
			}
		case <-n.dirty:
			touch()
		case <-quiet.C:
			fire()
		case <-most.C:
			fire()
		}
	}
}

// spawn runs f on a goroutine Run waits for, or inline once Run is stopping.
func (n *nbIfaces) spawn(f func()) {
	n.mu.Lock()
	if n.closing {
		n.mu.Unlock()
		f()
		return
	}
	n.wg.Add(1)
	n.mu.Unlock()
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *nbIfaces) changed() {
	select {
	case n.dirty <- struct{}{}:
	default:
	}
}

func (n *nbIfaces) wakeManager() {
	select {
	case n.kick <- struct{}{}:
	default:
	}
}

func (n *nbIfaces) names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name := range n.m {
		out = append(out, name)
	}
	return out
}

// index returns the index of st, rebuilt when the revision changed; clients read
// peers from the latest one.
func (n *nbIfaces) index(st consensus.State) *nbIndex {
	if !n.idx.current(st) {
		n.idx = buildIndex(st)
		n.peers.Store(n.idx)
	}
	return n.idx
}

// Sync records which held resources need an interface (attached by Run, outside
// this pass) and detaches those whose resource is no longer held (the address is
// already gone: lease lost) or whose settings changed; their releases finish in the
// background.
func (n *nbIfaces) Sync(st consensus.State, held map[string]bool) {
	idx := n.index(st)
	now := time.Now()
	n.mu.Lock()
	stale := map[string]*nbIface{}
	for name, nb := range n.m {
		s, ok := idx.specs[name]
		if !held[name] || !ok || s.err != nil || s.key != nb.key {
			stale[name] = nb
			delete(n.m, name)
			n.releasing[name] = true
		}
	}
	for name := range n.failed {
		if !held[name] {
			delete(n.failed, name) // a resource that comes back starts without backoff
		}
	}
	clear(n.pending)
	for name := range held {
		s, ok := idx.specs[name]
		if !ok {
			continue
		}
		if _, attached := n.m[name]; attached {
			continue
		}
		f, hasFailed := n.failed[name]
		if hasFailed && f.key == s.key && now.Before(f.next) {
			continue
		}
		if s.err != nil {
			n.failLocked(s, s.err, now)
			continue
		}
		n.pending[name] = s
	}
	work := len(n.pending) > 0 && n.ctx != nil
	n.mu.Unlock()
	for name, nb := range stale {
		n.spawn(func() {
			n.release([]*nbIface{nb}, 0)
			n.mu.Lock()
			delete(n.releasing, name)
			n.mu.Unlock()
			n.wakeManager() // a re-attach of the resource waits for this release
		})
	}
	if work {
		n.wakeManager()
	}
}

// attachPending attaches every pending interface whose stale predecessor is not
// still releasing; it returns how many it attached or failed to.
func (n *nbIfaces) attachPending() int {
	n.mu.Lock()
	todo := make([]string, 0, len(n.pending))
	for name := range n.pending {
		todo = append(todo, name)
	}
	n.mu.Unlock()
	links := map[string]*net.Interface{} // one interface lookup per link per batch
	start, attached, failed := time.Now(), 0, 0
	for _, name := range todo {
		// One interface at a time under the lock, so a detach of the same resource
		// sees it either pending (dropped) or attached (released).
		n.mu.Lock()
		s, ok := n.pending[name]
		_, busy := n.releasing[name]
		if !ok || busy || n.ctx == nil {
			n.mu.Unlock()
			continue
		}
		delete(n.pending, name)
		if err := n.attachLocked(n.ctx, s, links); err != nil {
			n.failLocked(s, err, time.Now())
			failed++
		} else {
			delete(n.failed, name)
			attached++
		}
		n.mu.Unlock()
	}
	n.mu.Lock()
	close(n.batch)
	n.batch = make(chan struct{})
	n.mu.Unlock()
	if attached > 0 {
		n.log.Info("NetBIOS interfaces attached", "count", attached, "took", time.Since(start).Round(time.Microsecond).String())
	}
	return attached + failed
}

func (n *nbIfaces) failLocked(s nbSpec, err error, now time.Time) {
	d := nbRetryMin
	if f, ok := n.failed[s.name]; ok && f.key == s.key {
		d = min(f.delay*2, nbRetryMax)
	}
	n.failed[s.name] = nbFailure{key: s.key, err: err, next: now.Add(d), delay: d}
	n.log.Error("NetBIOS interface could not be created; retrying", "event", netbios.EventInterfaceFailed,
		"resource", s.name, "vip", s.addr.Addr().String(), "retry_in", d.String(), "err", err)
}

// attachLocked: bind ADDR:137, start the responder, then the WINS client (the
// responder must already answer the WINS server's challenge). Call with n.mu held.
func (n *nbIfaces) attachLocked(ctx context.Context, s nbSpec, links map[string]*net.Interface) error {
	ip := s.addr.Addr()
	if !ip.Is4() {
		return fmt.Errorf("NetBIOS over TCP/IP needs an IPv4 address; %s is IPv6 (remove the NetBIOS names from this resource)", s.addr)
	}
	ifi := links[s.link]
	if ifi == nil {
		var err error
		if ifi, err = net.InterfaceByName(s.link); err != nil {
			return fmt.Errorf("interface %s: %w", s.link, err)
		}
		links[s.link] = ifi
	}
	conn, err := netbios.Dial(ip)
	if err != nil {
		return err
	}
	log := n.log.With("resource", s.name, "vip", ip.String())
	resp := netbios.NewResponder(netbios.ResponderConfig{Conn: conn, Addr: ip, Names: s.names, NodeType: s.nodeType,
		MAC: ifi.HardwareAddr, Logger: log, OnEvent: n.onEv})
	self := s.name
	cfg := netbios.ClientConfig{
		Servers: s.wins, Endpoints: []netbios.Endpoint{resp}, Names: s.names, NodeType: s.nodeType,
		Shared: n.shared, Logger: log, OnEvent: n.onEv, OnChange: n.changed,
		Peers: func(nn nbns.Name) []netip.Addr { return n.peers.Load().peersOf(self, nn) },
	}
	nb := &nbIface{key: s.key, addr: ip, conn: conn, resp: resp,
		clientDone: make(chan struct{}), respDone: make(chan struct{})}
	if s.nodeType != nbns.PNode && s.addr.Bits() < 31 {
		bc := resource.Broadcast(s.addr)
		if err := n.joinBroadcastLocked(ctx, bc, resp); err != nil {
			log.Warn("no broadcast socket for B-node queries on this subnet", "err", err)
		} else {
			nb.bcast = bc
			if s.nodeType == nbns.BNode || len(s.wins) == 0 {
				cfg.Broadcast = netip.AddrPortFrom(bc, netbios.Port)
			}
		}
	}
	client := netbios.NewClient(cfg)
	nb.client = client
	rctx, rcancel := context.WithCancel(ctx)
	cctx, ccancel := context.WithCancel(ctx)
	nb.stopResp, nb.stopClient = rcancel, ccancel
	n.wg.Add(2) // n.ctx is set (checked by the caller under n.mu): Run is not waiting yet
	go func() {
		defer n.wg.Done()
		defer close(nb.respDone)
		resp.Run(rctx)
	}()
	go func() {
		defer n.wg.Done()
		defer close(nb.clientDone)
		client.Run(cctx)
	}()
	n.m[s.name] = nb
	log.Debug("NetBIOS interface attached", "names", fmt.Sprint(s.names), "node_type", s.nodeType.String(), "wins", fmt.Sprint(s.wins))
	return nil
}

// joinBroadcastLocked hands the subnet's broadcasts to resp (one socket per
// subnet). Call with n.mu held.
func (n *nbIfaces) joinBroadcastLocked(ctx context.Context, bc netip.Addr, resp *netbios.Responder) error {
	b := n.listeners[bc]
	if b == nil {
		conn, err := netbios.DialBroadcast(bc)
		if err != nil {
			return err
		}
		lctx, cancel := context.WithCancel(ctx)
		b = &nbBcast{conn: conn, l: netbios.NewListener(conn, n.log), stop: cancel}
		n.listeners[bc] = b
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			b.l.Run(lctx)
			conn.Close()
		}()
	}
	b.users++
	b.l.Add(resp)
	return nil
}

// waitUp returns once the resource's NetBIOS interface is attached, its attach
// failed, or it is not waiting for one (no NetBIOS settings, not held), or when ctx
// ends: the online hook runs after the address and the NetBIOS interface are up.
func (n *nbIfaces) waitUp(ctx context.Context, name string) {
	for {
		n.mu.Lock()
		_, waiting := n.pending[name]
		ch := n.batch
		n.mu.Unlock()
		if !waiting {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
	}
}

// detach releases every name of the named resources (waiting up to budget for the
// releases; 0 waits for them to finish, bounded by the client's ReleaseTimeout),
// then stops the responders and closes the sockets. Interfaces not attached yet are
// not attached any more.
func (n *nbIfaces) detach(names []string, budget time.Duration) {
	n.mu.Lock()
	var nbs []*nbIface
	for _, name := range names {
		if nb, ok := n.m[name]; ok {
			nbs = append(nbs, nb)
			delete(n.m, name)
		}
		delete(n.failed, name)
		delete(n.pending, name)
	}
	n.mu.Unlock()
	n.release(nbs, budget)
}

// release stops the clients (each releases its names from every address, all
// clients in parallel, the requests bounded by the node's in-flight window) and
// waits up to budget (0: until they finish); what is left ends in the background.
func (n *nbIfaces) release(nbs []*nbIface, budget time.Duration) {
	var wait <-chan time.Time
	if budget > 0 {
		t := time.NewTimer(budget)
		defer t.Stop()
		wait = t.C
	}
	for _, nb := range nbs {
		nb.stopClient()
	}
	for _, nb := range nbs {
		select {
		case <-nb.clientDone:
		case <-wait:
			n.spawn(func() { n.finish(nb) }) // the address goes now; the rest ends in the background
			continue
		}
		n.finish(nb)
	}
}

func (n *nbIfaces) finish(nb *nbIface) {
	<-nb.clientDone
	if nb.bcast.IsValid() {
		n.mu.Lock()
		if b := n.listeners[nb.bcast]; b != nil {
			b.l.Remove(nb.resp)
			if b.users--; b.users == 0 {
				b.stop()
				delete(n.listeners, nb.bcast)
			}
		}
		n.mu.Unlock()
	}
	nb.stopResp()
	<-nb.respDone
	nb.conn.Close()
}

// status returns a resource's name states and its attach failure, if any; names
// waiting for the manager show as registering.
func (n *nbIfaces) status(name string) ([]api.NameStatus, error) {
	n.mu.Lock()
	nb := n.m[name]
	f, failed := n.failed[name]
	p, pending := n.pending[name]
	n.mu.Unlock()
	if failed {
		return nil, f.err
	}
	if nb == nil {
		if !pending {
			return nil, nil
		}
		out := make([]api.NameStatus, 0, len(p.names))
		for _, nn := range p.names {
			out = append(out, api.NameStatus{Name: nn.String(), State: netbios.StateRegistering.String()})
		}
		return out, nil
	}
	v := nb.client.Version()
	n.mu.Lock()
	rows, ok := nb.rows, nb.rows != nil && nb.rowsAt == v
	n.mu.Unlock()
	if ok {
		return rows, nil // shared: the observations only read it
	}
	rows = nameRows(nb.client.Status())
	n.mu.Lock()
	nb.rows, nb.rowsAt = rows, v
	n.mu.Unlock()
	return rows, nil
}

// nameRows makes one row per name: the worst state over its addresses and WINS
// servers. A resource has a handful of names: a linear search beats a map (this
// runs for every held resource on every reconcile pass).
func nameRows(st []netbios.NameStatus) []api.NameStatus {
	var names []nbns.Name
	var worst []netbios.State
	for _, s := range st {
		i := slices.Index(names, s.Name)
		if i < 0 {
			names, worst = append(names, s.Name), append(worst, s.State)
			continue
		}
		if rank(s.State) > rank(worst[i]) {
			worst[i] = s.State
		}
	}
	out := make([]api.NameStatus, len(names))
	for i, nn := range names {
		out[i] = api.NameStatus{Name: nn.String(), State: worst[i].String()}
	}
	return out
}

func rank(s netbios.State) int {
	switch s {
	case netbios.StateRegistered, netbios.StateReleased:
		return 0
	case netbios.StateRegistering, netbios.StateRefreshing:
		return 1
	case netbios.StateFailed:
		return 2
	}
	return 3 // conflict
}
