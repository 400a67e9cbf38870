package health

import (
	"context"
	"sync"
	"time"
)

// LoopLag measures how late a ticker of Period fires: on a machine so loaded that
// the agent's goroutines run tens of milliseconds late, 25 ms lease renewals slip
// and false failovers follow. Run owns its goroutine.
type LoopLag struct {
	Period time.Duration

	mu   sync.Mutex // guards max and last
	max  time.Duration
	last time.Duration
}

// Run samples until ctx ends.
func (l *LoopLag) Run(ctx context.Context) error {
	t := time.NewTicker(l.Period)
	defer t.Stop()
	next := time.Now().Add(l.Period)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case now := <-t.C:
			lag := max(now.Sub(next), 0)
			next = now.Add(l.Period)
			l.mu.Lock()
			l.last = lag
			l.max = max(l.max, lag)
			l.mu.Unlock()
		}
	}
}

// Lag returns the last lag and the worst since the previous call.
func (l *LoopLag) Lag() (last, worst time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, worst = l.last, l.max
	l.max = l.last
	return last, worst
}
