package main

import (
	"context"
	"sync"
	"time"
)

// lagProbe measures how late a 10 ms ticker fires in the benchmark's own process:
// the agents compete for the same CPUs, so a late tick here means the machine (not
// an agent's logic) delayed every process, the agents' lease loops included.
type lagProbe struct {
	period time.Duration

	mu    sync.Mutex // guards worst
	worst time.Duration
}

func newLagProbe(ctx context.Context) *lagProbe {
	p := &lagProbe{period: 10 * time.Millisecond}
	go p.run(ctx)
	return p
}

func (p *lagProbe) run(ctx context.Context) {
	t := time.NewTicker(p.period)
	defer t.Stop()
	next := time.Now().Add(p.period)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			lag := max(now.Sub(next), 0)
			next = now.Add(p.period)
			p.mu.Lock()
			p.worst = max(p.worst, lag)
			p.mu.Unlock()
		}
	}
}

// take returns the worst lateness since the last take and starts a new window.
func (p *lagProbe) take() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.worst
	p.worst = 0
	return w
}
