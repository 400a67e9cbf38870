package health

import (
	"sync"
	"time"
)

// LoopLag records how late the agent's own periodic work runs: on a machine so
// loaded that the agent's goroutines run tens of milliseconds late, 25 ms lease
// renewals slip and false failovers follow. The lease loop reports each tick's
// lateness with Note; it owns no timer of its own (a separate 10 ms ticker cost an
// idle agent 100 wake-ups a second).
type LoopLag struct {
	mu   sync.Mutex // guards max and last
	max  time.Duration
	last time.Duration
}

// Note records one tick that arrived gap after the one before it, on a ticker of
// period: the lateness is what gap exceeds period by.
func (l *LoopLag) Note(gap, period time.Duration) {
	lag := max(gap-period, 0)
	l.mu.Lock()
	l.last = lag
	l.max = max(l.max, lag)
	l.mu.Unlock()
}

// Lag returns the last lateness and the worst since the previous call.
func (l *LoopLag) Lag() (last, worst time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	last, worst = l.last, l.max
	l.max = l.last
	return last, worst
}
