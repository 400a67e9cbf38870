package netbios

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// Defaults of ResponderConfig.
const (
	// DefaultAnswerTTL is the TTL of positive name query answers: 3 days, the TTL
	// nmbd registers with (vectors 1, 3), which Samba WINS then clamps.
	DefaultAnswerTTL = 259200
	// DefaultLogEvery spaces the log lines about undecodable packets, so a flood of
	// garbage costs one line per interval.
	DefaultLogEvery = 10 * time.Second
	// receivedQueue is how many packets wait for the WINS client before more are
	// dropped (and counted).
	receivedQueue = 64
	// readBuffer holds one datagram: NBNS messages stay under 576 bytes (RFC 1002
	// 4.2.1, Samba's MAX_DGRAM_SIZE); larger ones are truncated and fail to decode.
	readBuffer = 1500
)

// ResponderConfig configures the name service of one cluster address.
type ResponderConfig struct {
	Conn     net.PacketConn   // bound to Addr:137 (Dial); the responder never closes it
	Addr     netip.Addr       // the cluster address named in answers
	Names    []nbns.Name      // unique names answered for; set Scope on each if any
	NodeType nbns.NodeType    // owner node type in answers
	MAC      net.HardwareAddr // unit id in node status answers (the interface's MAC)
	TTL      uint32           // TTL of positive answers; 0 means DefaultAnswerTTL
	Logger   *slog.Logger
	Clock    Clock         // nil means the system clock
	LogEvery time.Duration // 0 means DefaultLogEvery
	OnEvent  func(Event)   // names defended against broadcast registrations (B-node)
}

// Packet is a received message and its sender.
type Packet struct {
	From netip.AddrPort
	Msg  *nbns.Message
}

// ResponderStats counts what a responder did.
type ResponderStats struct {
	NameQueries    uint64 // name queries answered, positively or negatively
	StatusQueries  uint64 // node status requests answered
	Garbage        uint64 // datagrams that did not decode
	Ignored        uint64 // requests not for us (broadcasts for other names, other opcodes)
	DroppedReplies uint64 // packets for the WINS client dropped because it did not keep up
	SendErrors     uint64
}

// Responder answers name queries and node status requests sent to one cluster
// address, and hands responses (to the WINS client's requests from this address) and
// challenges to Received. Run owns its only goroutine.
type Responder struct {
	conn     net.PacketConn
	addr     netip.Addr
	nodeType nbns.NodeType
	ttl      uint32
	unit     [6]byte
	log      *slog.Logger
	clock    Clock
	logEvery time.Duration
	received chan Packet
	onEvent  func(Event)

	mu       sync.Mutex // guards the fields below
	names    []nbns.Name
	conflict map[nbns.Name]bool

	nameQueries, statusQueries, garbage, ignored, dropped, sendErrors atomic.Uint64
}

// NewResponder returns a responder; it starts nothing.
func NewResponder(cfg ResponderConfig) *Responder {
	r := &Responder{
		conn:     cfg.Conn,
		addr:     cfg.Addr,
		nodeType: cfg.NodeType,
		ttl:      cfg.TTL,
		log:      cfg.Logger,
		clock:    cfg.Clock,
		logEvery: cfg.LogEvery,
		received: make(chan Packet, receivedQueue),
		conflict: map[nbns.Name]bool{},
	}
	copy(r.unit[:], cfg.MAC)
	if r.ttl == 0 {
		r.ttl = DefaultAnswerTTL
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("vip", cfg.Addr)
	if r.clock == nil {
		r.clock = systemClock{}
	}
	if r.logEvery == 0 {
		r.logEvery = DefaultLogEvery
	}
	r.onEvent = cfg.OnEvent
	if r.onEvent == nil {
		r.onEvent = func(Event) {}
	}
	r.SetNames(cfg.Names)
	return r
}

// key normalises a name for lookups: scopes compare without regard to case.
func key(n nbns.Name) nbns.Name {
	n.Scope = strings.ToLower(n.Scope)
	return n
}

// SetNames replaces the names answered for; conflict marks of names that stay are kept.
func (r *Responder) SetNames(names []nbns.Name) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.names = append([]nbns.Name(nil), names...)
	keep := map[nbns.Name]bool{}
	for _, n := range names {
		if r.conflict[key(n)] {
			keep[key(n)] = true
		}
	}
	r.conflict = keep
}

// SetConflict marks n as in conflict (answered negatively, flagged CNF in node
// status) or clears the mark.
func (r *Responder) SetConflict(n nbns.Name, in bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if in {
		r.conflict[key(n)] = true
	} else {
		delete(r.conflict, key(n))
	}
}

// Addr is the cluster address this responder answers for.
func (r *Responder) Addr() netip.Addr { return r.addr }

// Received delivers what the WINS client needs from the socket: every response, and
// every direct name query (neither RD nor B) answered positively, which is how a
// WINS server challenges the holder of a name another node is registering.
func (r *Responder) Received() <-chan Packet { return r.received }

// Send writes b to `to` from the responder's socket (source ADDR:137).
func (r *Responder) Send(b []byte, to netip.AddrPort) error {
	_, err := r.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	if err != nil {
		r.sendErrors.Add(1)
	}
	return err
}

// Stats returns the counters.
func (r *Responder) Stats() ResponderStats {
	return ResponderStats{
		NameQueries:    r.nameQueries.Load(),
		StatusQueries:  r.statusQueries.Load(),
		Garbage:        r.garbage.Load(),
		Ignored:        r.ignored.Load(),
		DroppedReplies: r.dropped.Load(),
		SendErrors:     r.sendErrors.Load(),
	}
}

// Run answers requests until ctx is done; it returns nil then, or the socket's error.
func (r *Responder) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { r.conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, readBuffer)
	var (
		out      []byte
		lastLog  time.Time
		unlogged uint64
		msg      nbns.Message
	)
	for {
		n, from, err := r.conn.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			return err
		}
		src := fromNetAddr(from)
		if err := msg.Unpack(buf[:n]); err != nil {
			r.garbage.Add(1)
			unlogged++
			if now := r.clock.Now(); now.Sub(lastLog) >= r.logEvery {
				r.log.Warn("ignoring undecodable NetBIOS packets", "from", src, "count", unlogged, "err", err)
				lastLog, unlogged = now, 0
			}
			continue
		}
		if msg.Response {
			r.pass(src, &msg)
			continue
		}
		reply := r.answer(&msg)
		if reply == nil {
			r.ignored.Add(1)
			continue
		}
		if msg.Flags&(nbns.FlagRD|nbns.FlagB) == 0 && reply.RCode == nbns.RCodeOK && msg.Questions[0].Type == nbns.TypeNB {
			r.pass(src, &msg)
		}
		if out, err = reply.AppendPack(out[:0]); err != nil {
			r.log.Error("cannot encode NetBIOS answer", "to", src, "err", err)
			continue
		}
		if err := r.Send(out, src); err != nil {
			r.log.Debug("cannot send NetBIOS answer", "to", src, "err", err)
		}
	}
}

// pass queues a copy of m for the WINS client, or counts it dropped.
func (r *Responder) pass(from netip.AddrPort, m *nbns.Message) {
	c := *m // Unpack gives every message fresh slices; the header is copied here
	select {
	case r.received <- Packet{From: from, Msg: &c}:
	default:
		r.dropped.Add(1)
	}
}

func fromNetAddr(a net.Addr) netip.AddrPort {
	if u, ok := a.(*net.UDPAddr); ok {
		ap := u.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// answer decides the reply to a request, or nil for none. It is a pure function of
// the request and the responder's names.
func (r *Responder) answer(req *nbns.Message) *nbns.Message {
	if req.Opcode != nbns.OpQuery || len(req.Questions) != 1 {
		return nil
	}
	q := req.Questions[0]
	bcast := req.Flags&nbns.FlagB != 0
	r.mu.Lock()
	defer r.mu.Unlock()
	switch q.Type {
	case nbns.TypeNBSTAT:
		if k := key(q.Name); k.Label != "*" && !r.hasLocked(k) {
			return nil // Samba, too, stays silent for names it does not hold
		}
		r.statusQueries.Add(1)
		return nbns.NewNodeStatusResponse(req, r.statusLocked())
	case nbns.TypeNB:
		k := key(q.Name)
		if r.hasLocked(k) && !r.conflict[k] {
			r.nameQueries.Add(1)
			e := nbns.NBEntry{Flags: nbns.MakeNBFlags(r.nodeType, false), Addr: r.addr}
			return nbns.NewQueryResponse(req, r.ttl, e)
		}
		if bcast {
			return nil // RFC 1002 5.1.1: no negative answers to broadcasts
		}
		r.nameQueries.Add(1)
		return nbns.NewNegativeQueryResponse(req, nbns.RCodeName)
	}
	return nil
}

func (r *Responder) hasLocked(k nbns.Name) bool {
	for _, n := range r.names {
		if key(n) == k {
			return true
		}
	}
	return false
}

func (r *Responder) statusLocked() *nbns.NodeStatus {
	s := &nbns.NodeStatus{Names: make([]nbns.StatusName, 0, len(r.names))}
	for _, n := range r.names {
		f := nbns.NameActive
		if r.conflict[key(n)] {
			f |= nbns.NameConflict
		}
		s.Names = append(s.Names, nbns.StatusName{Label: n.Label, Suffix: n.Suffix, Flags: nbns.MakeNameFlags(r.nodeType, f)})
	}
	s.Statistics.UnitID = r.unit
	return s
}
