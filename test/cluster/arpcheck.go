package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/clusterd/clusterd/resource/sockopt"
	"github.com/clusterd/clusterd/test/lab"
	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
)

// Defaults of ARPSweep. The neighbour table's gc_thresh3 (1,024) is global to the
// kernel, so a client that pinged 1,000+ addresses would overflow it; raw ARP
// requests create no neighbour entry on the asking side, and each answering node
// learns only the client's one entry.
const (
	// DefaultSweepBatch requests go out back to back before a pause: a bridge and
	// a veth queue of 1,000 frames take that easily.
	DefaultSweepBatch = 100
	// DefaultSweepGap is the pause after each batch, so answers do not pile up in
	// the receivers' backlog (netdev_max_backlog is 1,000 frames per CPU).
	DefaultSweepGap = 2 * time.Millisecond
	// DefaultSweepRetry is how long after it was last asked an unanswered address
	// is asked again; it is also the resolution of a sweep's answer times.
	DefaultSweepRetry = 50 * time.Millisecond
	// sweepReadBuffer holds the answers of several batches while the reader catches
	// up (SO_RCVBUFFORCE: the default 208 KB is about 300 frames).
	sweepReadBuffer = 8 << 20
)

// ARPSweep asks "who has A?" for many addresses at once from one host with raw ARP
// requests (mdlayher/arp), in batches, and records the first acceptable answer per
// address. Addresses not answered yet are asked again every Retry, so a sweep started
// during a failover ends when the last address answers from its new holder. The
// zero value uses the defaults.
type ARPSweep struct {
	Batch int           // requests sent back to back (DefaultSweepBatch)
	Gap   time.Duration // pause after each batch (DefaultSweepGap)
	Retry time.Duration // ask an unanswered address again after this (DefaultSweepRetry)
}

// Answer is the first accepted ARP reply for an address.
type Answer struct {
	MAC string    // the answering hardware address
	At  time.Time // when the reply was read
}

// ErrUnanswered means a sweep ended (its context) before every address answered.
var ErrUnanswered = errors.New("addresses did not answer ARP")

// Sweep asks for every address in ips from h's link until each was answered by a
// MAC accept allows (nil accepts any) or ctx ends; then it returns the answers it
// has and an error wrapping ErrUnanswered that counts and names the first missing
// ones. Only replies to h's own requests count (target = h's address), not
// gratuitous ARP.
func (s ARPSweep) Sweep(ctx context.Context, h *lab.Host, ips []netip.Addr, accept func(mac string) bool) (map[netip.Addr]Answer, error) {
	s = s.withDefaults()
	c, err := dialSweep(h)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	st := newSweepState(ips, h.Addr.Addr(), accept)
	readDone := make(chan struct{})
	rctx, stop := context.WithCancel(ctx)
	go func() {
		defer close(readDone)
		for rctx.Err() == nil {
			c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
			p, _, err := c.Read()
			if err != nil {
				continue
			}
			st.observe(p, time.Now())
		}
	}()
	err = s.ask(ctx, c, st)
	stop()
	<-readDone
	return st.result(), err
}

func (s ARPSweep) withDefaults() ARPSweep {
	if s.Batch <= 0 {
		s.Batch = DefaultSweepBatch
	}
	if s.Gap <= 0 {
		s.Gap = DefaultSweepGap
	}
	if s.Retry <= 0 {
		s.Retry = DefaultSweepRetry
	}
	return s
}

// ask sends rounds of requests for the unanswered addresses until none is left.
func (s ARPSweep) ask(ctx context.Context, c *arp.Client, st *sweepState) error {
	for {
		start := time.Now()
		pending := st.pending()
		if len(pending) == 0 {
			return nil
		}
		for i, ip := range pending {
			if err := c.Request(ip); err != nil {
				return fmt.Errorf("ARP request for %s: %w", ip, err)
			}
			if (i+1)%s.Batch == 0 {
				if err := sleepCtx(ctx, s.Gap); err != nil {
					return st.missing(err)
				}
			}
		}
		// Wait for answers, but leave as soon as everything answered.
		for time.Since(start) < s.Retry {
			if st.done() {
				return nil
			}
			if err := sleepCtx(ctx, time.Millisecond); err != nil {
				return st.missing(err)
			}
		}
		if ctx.Err() != nil {
			return st.missing(ctx.Err())
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// dialSweep opens an ARP socket on h's link with a large receive buffer.
func dialSweep(h *lab.Host) (*arp.Client, error) {
	var c *arp.Client
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Link)
		if err != nil {
			return err
		}
		p, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		if err != nil {
			return err
		}
		sockopt.ConnReadBuffer(p, sweepReadBuffer)
		if c, err = arp.New(ifi, p); err != nil {
			p.Close()
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ARP sweep: open ARP socket on %s in %s: %w", h.Link, h.Name, err)
	}
	return c, nil
}

// sweepState is what a sweep asked and what answered; the reader and the sender
// share it.
type sweepState struct {
	self   netip.Addr
	accept func(string) bool
	order  []netip.Addr // asked addresses, in the caller's order

	mu      sync.Mutex // guards answers
	answers map[netip.Addr]Answer
	want    map[netip.Addr]bool
}

func newSweepState(ips []netip.Addr, self netip.Addr, accept func(string) bool) *sweepState {
	want := make(map[netip.Addr]bool, len(ips))
	var order []netip.Addr
	for _, ip := range ips {
		if !want[ip] {
			want[ip] = true
			order = append(order, ip)
		}
	}
	return &sweepState{self: self, accept: accept, order: order, want: want, answers: make(map[netip.Addr]Answer, len(order))}
}

// answerOf returns the address a frame answers for this sweep: an ARP reply to
// self's request (target = self), from an address asked for, by an accepted MAC.
func answerOf(p *arp.Packet, self netip.Addr, want map[netip.Addr]bool, accept func(string) bool) (netip.Addr, string, bool) {
	if p.Operation != arp.OperationReply || p.TargetIP != self || !want[p.SenderIP] {
		return netip.Addr{}, "", false
	}
	mac := p.SenderHardwareAddr.String()
	if accept != nil && !accept(mac) {
		return netip.Addr{}, "", false
	}
	return p.SenderIP, mac, true
}

func (s *sweepState) observe(p *arp.Packet, at time.Time) {
	ip, mac, ok := answerOf(p, s.self, s.want, s.accept)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.answers[ip]; !seen {
		s.answers[ip] = Answer{MAC: mac, At: at}
	}
}

func (s *sweepState) pending() []netip.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []netip.Addr
	for _, ip := range s.order {
		if _, ok := s.answers[ip]; !ok {
			out = append(out, ip)
		}
	}
	return out
}

func (s *sweepState) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.answers) == len(s.order)
}

func (s *sweepState) result() map[netip.Addr]Answer {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.Addr]Answer, len(s.answers))
	for k, v := range s.answers {
		out[k] = v
	}
	return out
}

// missing wraps cause with how many addresses never answered and the first few.
func (s *sweepState) missing(cause error) error {
	p := s.pending()
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %d of %d unanswered (first %v) when the sweep ended: %v", ErrUnanswered, len(p), len(s.order), p[:min(len(p), 5)], cause)
}

// Latest returns the latest answer time of answers (zero for none).
func Latest(answers map[netip.Addr]Answer) time.Time {
	var t time.Time
	for _, a := range answers {
		if a.At.After(t) {
			t = a.At
		}
	}
	return t
}

// ByMAC counts answers per answering MAC.
func ByMAC(answers map[netip.Addr]Answer) map[string]int {
	out := map[string]int{}
	for _, a := range answers {
		out[a.MAC]++
	}
	return out
}

// AddrRange returns n consecutive IPv4 addresses from first, skipping the .0 and
// .255 of every /24 (valid in a /16, but some tools treat them as special).
func AddrRange(first netip.Addr, n int) []netip.Addr {
	out := make([]netip.Addr, 0, n)
	for a := first; len(out) < n && a.IsValid(); a = a.Next() {
		if b := a.As4(); b[3] == 0 || b[3] == 255 {
			continue
		}
		out = append(out, a)
	}
	return slices.Clip(out)
}
