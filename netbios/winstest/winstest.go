// Package winstest is an in-process WINS server for tests, modelled on what Samba
// 4.17's nmbd does as a WINS server (../../shared/NETBIOS.md and the vectors): unique
// and multi-homed registration with WACK and a challenge query to the current
// holder, refresh (an unknown name is registered), release (drops the whole
// multi-homed record), recursive name queries, TTL clamping.
//
// One deviation: tests run every node on loopback with ephemeral ports, so the
// challenge query goes to the socket that registered the holder's address, not to
// ADDRESS:137.
package winstest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// Config configures a Server; zero values take Samba's behaviour where it has one.
type Config struct {
	Conn             net.PacketConn // the server's socket; Run does not close it
	MinTTL, MaxTTL   uint32         // granted TTL clamp (Samba: 21600 and 518400)
	WACKTTL          uint32         // TTL of WACKs (Samba: 60)
	ChallengeTimeout time.Duration  // how long a challenged holder has to answer (default 500 ms)
}

type record struct {
	addrs   []netip.Addr
	flags   nbns.NBFlags
	expires time.Time
}

// Server is a fake WINS server; Run owns its goroutines.
type Server struct {
	cfg Config

	mu       sync.Mutex // guards the fields below
	records  map[nbns.Name]*record
	sockets  map[netip.Addr]netip.AddrPort // where each registered address was registered from
	refuse   map[nbns.Name]nbns.RCode
	drop     bool
	ops      []string
	pending  map[uint16]chan *nbns.Message
	nextID   uint16
	requests int
}

// New returns a server; it starts nothing.
func New(cfg Config) *Server {
	if cfg.MinTTL == 0 {
		cfg.MinTTL = 21600
	}
	if cfg.MaxTTL == 0 {
		cfg.MaxTTL = 518400
	}
	if cfg.WACKTTL == 0 {
		cfg.WACKTTL = 60
	}
	if cfg.ChallengeTimeout == 0 {
		cfg.ChallengeTimeout = 500 * time.Millisecond
	}
	return &Server{
		cfg:     cfg,
		records: map[nbns.Name]*record{},
		sockets: map[netip.Addr]netip.AddrPort{},
		refuse:  map[nbns.Name]nbns.RCode{},
		pending: map[uint16]chan *nbns.Message{},
		nextID:  0x4000,
	}
}

// AddrPort is where the server listens.
func (s *Server) AddrPort() netip.AddrPort {
	return s.cfg.Conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// SetDrop makes the server ignore every packet (an unreachable server) or answer again.
func (s *Server) SetDrop(drop bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop = drop
}

// Refuse makes registrations of n fail with rcode (0 clears it).
func (s *Server) Refuse(n nbns.Name, rcode nbns.RCode) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == 0 {
		delete(s.refuse, n)
	} else {
		s.refuse[n] = rcode
	}
}

// Lookup returns the addresses registered for n, or nil.
func (s *Server) Lookup(n nbns.Name) []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.liveLocked(n); r != nil {
		return slices.Clone(r.addrs)
	}
	return nil
}

// Ops returns the log of changes, one line per add/refresh/delete, like Samba's
// `wins hook`: "add FILESRV<20> 192.0.2.10 192.0.2.11".
func (s *Server) Ops() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ops)
}

// Requests counts the requests received (dropped ones included).
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Register puts a record in place as if addr had registered n from sock.
func (s *Server) Register(n nbns.Name, addr netip.Addr, sock netip.AddrPort, ttl uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records[n] = &record{addrs: []netip.Addr{addr}, flags: nbns.MakeNBFlags(nbns.HNode, false), expires: time.Now().Add(time.Duration(ttl) * time.Second)}
	s.sockets[addr] = sock
	s.opLocked("add", n)
}

// Send sends m from the server's socket (e.g. a name conflict demand).
func (s *Server) Send(m *nbns.Message, to netip.AddrPort) error {
	b, err := m.AppendPack(nil)
	if err != nil {
		return err
	}
	_, err = s.cfg.Conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

func (s *Server) liveLocked(n nbns.Name) *record {
	r := s.records[n]
	if r == nil || time.Now().After(r.expires) {
		return nil
	}
	return r
}

func (s *Server) opLocked(op string, n nbns.Name) {
	line := op + " " + n.String()
	if r := s.records[n]; r != nil {
		for _, a := range r.addrs {
			line += " " + a.String()
		}
	}
	s.ops = append(s.ops, line)
}

func (s *Server) clamp(ttl uint32) uint32 {
	return min(max(ttl, s.cfg.MinTTL), s.cfg.MaxTTL)
}

// Run serves until ctx is done.
func (s *Server) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	stop := context.AfterFunc(ctx, func() { s.cfg.Conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 1500)
	for {
		n, from, err := s.cfg.Conn.ReadFrom(buf)
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
		if m.Unpack(buf[:n]) != nil {
			continue
		}
		src := from.(*net.UDPAddr).AddrPort()
		s.mu.Lock()
		s.requests++
		drop := s.drop
		ch := s.pending[m.ID]
		s.mu.Unlock()
		switch {
		case drop:
		case m.Response:
			if ch != nil {
				select {
				case ch <- &m:
				default:
				}
			}
		default:
			if reply, challenge := s.handle(&m, src); reply != nil {
				s.Send(reply, src)
			} else if challenge != nil {
				wg.Go(func() { s.challenge(ctx, challenge) })
			}
		}
	}
}

// challengeJob is a registration waiting for the current holder to answer.
type challengeJob struct {
	req    *nbns.Message
	src    netip.AddrPort
	holder netip.AddrPort
	multi  bool
}

// handle answers a request at once, or returns the challenge to run.
func (s *Server) handle(m *nbns.Message, src netip.AddrPort) (*nbns.Message, *challengeJob) {
	if len(m.Questions) != 1 {
		return nil, nil
	}
	n := m.Questions[0].Name
	s.mu.Lock()
	defer s.mu.Unlock()
	switch m.Opcode {
	case nbns.OpQuery:
		if m.Flags&nbns.FlagRD == 0 {
			return nil, nil // only recursive queries go to the WINS server
		}
		r := s.liveLocked(n)
		if r == nil {
			return nbns.NewNegativeQueryResponse(m, nbns.RCodeName), nil
		}
		var es []nbns.NBEntry
		for _, a := range r.addrs {
			es = append(es, nbns.NBEntry{Flags: r.flags, Addr: a})
		}
		return nbns.NewQueryResponse(m, uint32(time.Until(r.expires)/time.Second), es...), nil
	case nbns.OpRegister, nbns.OpMultiHomedRegister, nbns.OpRefresh, nbns.OpRefreshAlt:
		return s.registerLocked(m, n, src)
	case nbns.OpRelease:
		e, ok := entry(m)
		r := s.liveLocked(n)
		if !ok || r == nil || !slices.Contains(r.addrs, e.Addr) {
			return nbns.NewReleaseResponse(m, nbns.RCodeName), nil
		}
		s.opLocked("delete", n)
		delete(s.records, n) // Samba drops the whole multi-homed record
		return nbns.NewReleaseResponse(m, nbns.RCodeOK), nil
	}
	return nil, nil
}

func entry(m *nbns.Message) (nbns.NBEntry, bool) {
	if len(m.Additionals) == 0 || len(m.Additionals[0].NB) == 0 {
		return nbns.NBEntry{}, false
	}
	return m.Additionals[0].NB[0], true
}

func (s *Server) registerLocked(m *nbns.Message, n nbns.Name, src netip.AddrPort) (*nbns.Message, *challengeJob) {
	e, ok := entry(m)
	if !ok {
		return nbns.NewRegistrationResponse(m, nbns.RCodeFormat, 0), nil
	}
	if rc, ok := s.refuse[n]; ok {
		return nbns.NewRegistrationResponse(m, rc, 0), nil
	}
	ttl := s.clamp(m.Additionals[0].TTL)
	r := s.liveLocked(n)
	refresh := m.Opcode == nbns.OpRefresh || m.Opcode == nbns.OpRefreshAlt
	switch {
	case r == nil:
		s.records[n] = &record{addrs: []netip.Addr{e.Addr}, flags: e.Flags, expires: time.Now().Add(time.Duration(ttl) * time.Second)}
		s.sockets[e.Addr] = src
		s.opLocked("add", n)
		return nbns.NewRegistrationResponse(m, nbns.RCodeOK, ttl), nil
	case slices.Contains(r.addrs, e.Addr):
		r.expires = time.Now().Add(time.Duration(ttl) * time.Second)
		s.sockets[e.Addr] = src
		s.opLocked("refresh", n)
		return nbns.NewRegistrationResponse(m, nbns.RCodeOK, ttl), nil
	case refresh:
		return nbns.NewRegistrationResponse(m, nbns.RCodeRefused, 0), nil
	}
	holder, ok := s.sockets[r.addrs[0]]
	if !ok {
		holder = netip.AddrPortFrom(r.addrs[0], 137)
	}
	s.sendLocked(nbns.NewWACK(m, s.cfg.WACKTTL), src)
	return nil, &challengeJob{req: m, src: src, holder: holder, multi: m.Opcode == nbns.OpMultiHomedRegister}
}

func (s *Server) sendLocked(m *nbns.Message, to netip.AddrPort) {
	if b, err := m.AppendPack(nil); err == nil {
		s.cfg.Conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	}
}

// challenge asks the holder whether it still wants the name (no RD, as Samba) and
// answers the registration: a multi-homed one is added if the holder answers and
// refused (RFS_ERR) if not; a unique one gets ACT_ERR if the holder answers and the
// name if not.
func (s *Server) challenge(ctx context.Context, j *challengeJob) {
	n := j.req.Questions[0].Name
	ch := make(chan *nbns.Message, 1)
	s.mu.Lock()
	s.nextID++
	id := s.nextID
	s.pending[id] = ch
	s.sendLocked(nbns.NewNameQuery(id, n, 0), j.holder)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	var answered bool
	select {
	case m := <-ch:
		answered = m.RCode == nbns.RCodeOK
	case <-time.After(s.cfg.ChallengeTimeout):
	case <-ctx.Done():
		return
	}
	e, _ := entry(j.req)
	ttl := s.clamp(j.req.Additionals[0].TTL)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.liveLocked(n)
	var reply *nbns.Message
	switch {
	case answered && j.multi && r != nil:
		r.addrs = append(r.addrs, e.Addr)
		r.expires = time.Now().Add(time.Duration(ttl) * time.Second)
		s.sockets[e.Addr] = j.src
		s.opLocked("add", n)
		reply = nbns.NewRegistrationResponse(j.req, nbns.RCodeOK, ttl)
	case answered:
		reply = nbns.NewRegistrationResponse(j.req, nbns.RCodeActive, 0)
	case j.multi:
		reply = nbns.NewRegistrationResponse(j.req, nbns.RCodeRefused, 0)
	default:
		s.records[n] = &record{addrs: []netip.Addr{e.Addr}, flags: e.Flags, expires: time.Now().Add(time.Duration(ttl) * time.Second)}
		s.sockets[e.Addr] = j.src
		s.opLocked("add", n)
		reply = nbns.NewRegistrationResponse(j.req, nbns.RCodeOK, ttl)
	}
	s.sendLocked(reply, j.src)
}

// String describes the server's records, for test failure messages.
func (s *Server) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := ""
	for n, r := range s.records {
		out += fmt.Sprintf("%v %v; ", n, r.addrs)
	}
	return out
}
