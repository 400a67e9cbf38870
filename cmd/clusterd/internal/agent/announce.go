package agent

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/clusterd/clusterd/resource/announce"
)

// announcers keeps one announce.Announcer per interface, created on first use and
// run under the context given to Run. It implements resource.Announcer.
type announcers struct {
	log *slog.Logger
	cfg announce.Config

	mu     sync.Mutex // guards the fields below
	ctx    context.Context
	wg     sync.WaitGroup
	byLink map[string]*announce.Announcer
}

func newAnnouncers(cfg announce.Config, log *slog.Logger) *announcers {
	cfg.Logger = log
	return &announcers{log: log, cfg: cfg, byLink: make(map[string]*announce.Announcer)}
}

// Run owns every Announcer's goroutine; it returns when ctx ends and they stopped.
func (s *announcers) Run(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	for _, a := range s.byLink {
		s.start(a)
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.wg.Wait()
	return ctx.Err()
}

// start runs a; called with mu held and ctx set.
func (s *announcers) start(a *announce.Announcer) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := a.Run(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Error("announcer stopped", "link", a.Link(), "err", err)
		}
	}()
}

func (s *announcers) get(link string) *announce.Announcer {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.byLink[link]; ok {
		return a
	}
	a, err := announce.New(link, s.cfg)
	if err != nil {
		s.log.Error("cannot announce on interface", "link", link, "err", err)
		return nil
	}
	s.byLink[link] = a
	if s.ctx != nil {
		s.start(a)
	}
	return a
}

// Announce schedules gratuitous ARP (IPv6: unsolicited NA) for addr on link.
func (s *announcers) Announce(link string, addr netip.Addr) {
	if a := s.get(link); a != nil {
		if err := a.Announce(addr); err != nil {
			s.log.Warn("announce", "link", link, "vip", addr.String(), "err", err)
		}
	}
}

// Cancel stops announcing addr on link.
func (s *announcers) Cancel(link string, addr netip.Addr) {
	s.mu.Lock()
	a := s.byLink[link]
	s.mu.Unlock()
	if a != nil {
		a.Cancel(addr)
	}
}

// stats returns each interface's announcer counters.
func (s *announcers) stats() map[string]announce.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]announce.Stats, len(s.byLink))
	for link, a := range s.byLink {
		out[link] = a.Stats()
	}
	return out
}
