package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/netbios"
	"github.com/clusterd/clusterd/netbios/nbns"
	"github.com/clusterd/clusterd/resource"
)

// nbIfaces keeps the NetBIOS interface of every held cluster address that carries
// NetBIOS settings: attached after the address is up, detached (every name released
// from the address, on every WINS server) before it goes. Run owns the goroutines.
type nbIfaces struct {
	state  func() consensus.State // the current replicated state (peers change over time)
	log    *slog.Logger
	shared *netbios.Shared
	onEv   func(netbios.Event)

	mu        sync.Mutex // guards the fields below
	ctx       context.Context
	m         map[string]*nbIface     // by resource name
	failed    map[string]nbFailure    // attach failures, by resource name
	listeners map[netip.Addr]*nbBcast // B-node: one per subnet broadcast address
	wg        sync.WaitGroup
}

type nbIface struct {
	key        string // address + settings: a change re-attaches
	addr       netip.Addr
	conn       net.PacketConn
	resp       *netbios.Responder
	client     *netbios.Client
	bcast      netip.Addr
	stopClient context.CancelFunc
	stopResp   context.CancelFunc
	clientDone chan struct{}
	respDone   chan struct{}
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

// attach retry backoff after a failure (event 1044), doubling.
const (
	nbRetryMin = time.Second
	nbRetryMax = 30 * time.Second
)

func newNBIfaces(state func() consensus.State, log *slog.Logger, onEvent func(netbios.Event)) *nbIfaces {
	return &nbIfaces{state: state, log: log, shared: netbios.NewShared(0), onEv: onEvent,
		m: map[string]*nbIface{}, failed: map[string]nbFailure{}, listeners: map[netip.Addr]*nbBcast{}}
}

// Run holds the context the interfaces run under; when it ends every interface is
// detached (names released) before Run returns.
func (n *nbIfaces) Run(ctx context.Context) error {
	n.mu.Lock()
	n.ctx = context.WithoutCancel(ctx)
	n.mu.Unlock()
	<-ctx.Done()
	n.mu.Lock()
	n.ctx = nil // attach nothing more
	n.mu.Unlock()
	n.detach(n.names(), 0)
	n.wg.Wait()
	return ctx.Err()
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

// nbSpec is what a resource's NetBIOS interface is made of.
type nbSpec struct {
	name     string
	addr     netip.Prefix
	link     string
	names    []nbns.Name
	wins     []netip.AddrPort
	nodeType nbns.NodeType
	key      string
}

func specOf(name string, r consensus.Resource) (nbSpec, error) {
	nb := r.NetBIOS
	s := nbSpec{name: name, addr: r.Address, link: r.Interface}
	for _, raw := range nb.Names {
		nn, err := netbios.ParseName(raw)
		if err != nil {
			return s, err
		}
		nn.Scope = nb.Scope
		s.names = append(s.names, nn)
	}
	for _, w := range nb.WINS {
		s.wins = append(s.wins, netip.AddrPortFrom(w, netbios.Port))
	}
	nt, err := netbios.ParseNodeType(nb.NodeType, len(nb.WINS) > 0)
	if err != nil {
		return s, err
	}
	s.nodeType = nt
	s.key = fmt.Sprintf("%s|%s|%v|%v|%s|%s", r.Address, r.Interface, nb.Names, nb.WINS, nb.NodeType, nb.Scope)
	return s, nil
}

// Sync attaches an interface for every held resource with NetBIOS settings that has
// none (or whose settings changed) and detaches, in the background, those whose
// resource is no longer held (the address is already gone: lease lost).
func (n *nbIfaces) Sync(st consensus.State, held map[string]bool) {
	var stale []string
	n.mu.Lock()
	ctx := n.ctx
	for name, nb := range n.m {
		r, ok := st.Resources[name]
		spec, err := nbSpecIf(name, r, ok)
		if !held[name] || err != nil || spec.key != nb.key {
			stale = append(stale, name)
		}
	}
	n.mu.Unlock()
	if len(stale) > 0 {
		go n.detach(stale, 0)
	}
	if ctx == nil {
		return
	}
	now := time.Now()
	for name := range held {
		r, ok := st.Resources[name]
		if !ok || r.NetBIOS == nil || len(r.NetBIOS.Names) == 0 {
			continue
		}
		spec, err := specOf(name, r)
		n.mu.Lock()
		_, attached := n.m[name]
		f, hasFailed := n.failed[name]
		n.mu.Unlock()
		if attached && !slices.Contains(stale, name) {
			continue
		}
		if hasFailed && f.key == spec.key && now.Before(f.next) {
			continue
		}
		if err == nil {
			err = n.attach(ctx, spec, st)
		}
		n.mu.Lock()
		if err != nil {
			d := nbRetryMin
			if hasFailed && f.key == spec.key {
				d = min(f.delay*2, nbRetryMax)
			}
			n.failed[name] = nbFailure{key: spec.key, err: err, next: now.Add(d), delay: d}
			n.log.Error("NetBIOS interface could not be created; retrying", "event", netbios.EventInterfaceFailed,
				"resource", name, "vip", spec.addr.Addr().String(), "retry_in", d.String(), "err", err)
		} else {
			delete(n.failed, name)
		}
		n.mu.Unlock()
	}
}

func nbSpecIf(name string, r consensus.Resource, ok bool) (nbSpec, error) {
	if !ok || r.NetBIOS == nil || len(r.NetBIOS.Names) == 0 {
		return nbSpec{}, errors.New("no NetBIOS settings")
	}
	return specOf(name, r)
}

// attach: bind ADDR:137, start the responder, then the WINS client (the responder
// must already answer the WINS server's challenge).
func (n *nbIfaces) attach(ctx context.Context, s nbSpec, st consensus.State) error {
	ip := s.addr.Addr()
	if !ip.Is4() {
		return fmt.Errorf("NetBIOS over TCP/IP needs an IPv4 address; %s is IPv6 (remove the NetBIOS names from this resource)", s.addr)
	}
	ifi, err := net.InterfaceByName(s.link)
	if err != nil {
		return fmt.Errorf("interface %s: %w", s.link, err)
	}
	conn, err := netbios.Dial(ip)
	if err != nil {
		return err
	}
	log := n.log.With("resource", s.name, "vip", ip.String())
	resp := netbios.NewResponder(netbios.ResponderConfig{Conn: conn, Addr: ip, Names: s.names, NodeType: s.nodeType,
		MAC: ifi.HardwareAddr, Logger: log, OnEvent: n.onEv})
	cfg := netbios.ClientConfig{
		Servers: s.wins, Endpoints: []netbios.Endpoint{resp}, Names: s.names, NodeType: s.nodeType,
		Shared: n.shared, Logger: log, OnEvent: n.onEv,
		Peers: func(nn nbns.Name) []netip.Addr { return peersOf(n.state(), s.name)(nn) },
	}
	nb := &nbIface{key: s.key, addr: ip, conn: conn, resp: resp,
		clientDone: make(chan struct{}), respDone: make(chan struct{})}
	if s.nodeType != nbns.PNode && s.addr.Bits() < 31 {
		bc := resource.Broadcast(s.addr)
		if err := n.joinBroadcast(ctx, bc, resp); err != nil {
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
	n.wg.Add(2)
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
	n.mu.Lock()
	n.m[s.name] = nb
	n.mu.Unlock()
	log.Info("NetBIOS interface attached", "names", fmt.Sprint(s.names), "node_type", s.nodeType.String(), "wins", fmt.Sprint(s.wins))
	return nil
}

// joinBroadcast hands the subnet's broadcasts to resp (one socket per subnet).
func (n *nbIfaces) joinBroadcast(ctx context.Context, bc netip.Addr, resp *netbios.Responder) error {
	n.mu.Lock()
	defer n.mu.Unlock()
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

// detach releases every name of the named resources (waiting up to budget for the
// releases; 0 waits for them to finish, bounded by the client's ReleaseTimeout),
// then stops the responders and closes the sockets.
func (n *nbIfaces) detach(names []string, budget time.Duration) {
	n.mu.Lock()
	var nbs []*nbIface
	for _, name := range names {
		if nb, ok := n.m[name]; ok {
			nbs = append(nbs, nb)
			delete(n.m, name)
		}
		delete(n.failed, name)
	}
	n.mu.Unlock()
	var wait <-chan time.Time
	if budget > 0 {
		wait = time.After(budget)
	}
	for _, nb := range nbs {
		nb.stopClient()
	}
	for _, nb := range nbs {
		select {
		case <-nb.clientDone:
		case <-wait:
			go n.finish(nb) // the address goes now; the rest ends in the background
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

// status returns a resource's name states and its attach failure, if any.
func (n *nbIfaces) status(name string) ([]api.NameStatus, error) {
	n.mu.Lock()
	nb := n.m[name]
	f, failed := n.failed[name]
	n.mu.Unlock()
	if failed {
		return nil, f.err
	}
	if nb == nil {
		return nil, nil
	}
	// One row per name: the worst state over its WINS servers.
	worst := map[string]netbios.State{}
	var order []string
	for _, s := range nb.client.Status() {
		k := s.Name.String()
		prev, seen := worst[k]
		if !seen {
			order = append(order, k)
		}
		if !seen || rank(s.State) > rank(prev) {
			worst[k] = s.State
		}
	}
	out := make([]api.NameStatus, 0, len(order))
	for _, k := range order {
		out = append(out, api.NameStatus{Name: k, State: worst[k].String()})
	}
	return out, nil
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

// peersOf lists, for each name, the addresses of the other resources carrying it:
// a name registered from two cluster addresses on two nodes is not a conflict.
func peersOf(st consensus.State, self string) func(nbns.Name) []netip.Addr {
	byName := map[string][]netip.Addr{}
	for name, r := range st.Resources {
		if name == self || r.NetBIOS == nil {
			continue
		}
		for _, raw := range r.NetBIOS.Names {
			byName[strings.ToUpper(raw)] = append(byName[strings.ToUpper(raw)], r.Address.Addr())
		}
	}
	return func(n nbns.Name) []netip.Addr {
		k := n
		k.Scope = ""
		return byName[strings.ToUpper(k.String())]
	}
}
