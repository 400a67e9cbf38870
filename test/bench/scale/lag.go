package main

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
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

// agentLag samples every agent's /readyz while a phase runs: its loop-lag check
// fails, naming how late the agent's own 10 ms timer ran, once that exceeds half a
// lease (75 ms by default). The agent keeps the worst lag until the next read, so a
// slow poll loses nothing; it must be slow, since every /readyz deep-copies the whole
// replicated state (14 ms at 10,000 resources). This sampler must be the only reader
// during the phase.
type agentLag struct {
	mu    sync.Mutex // guards worst
	worst map[string]time.Duration
	done  chan struct{}
}

// lagPoll is how often the sampler reads each agent's /readyz.
const lagPoll = 500 * time.Millisecond

var lagRe = regexp.MustCompile(`timers ran (\S+) late`)

// parseLoopLag returns the lateness a /readyz body reports (0 if its loop-lag check
// passed).
func parseLoopLag(body string) time.Duration {
	m := lagRe.FindStringSubmatch(body)
	if m == nil {
		return 0
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		return 0
	}
	return d
}

func watchAgentLag(ctx context.Context, c *cluster.Cluster, agents []*cluster.Agent) (stop func() map[string]time.Duration) {
	l := &agentLag{worst: map[string]time.Duration{}, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, a := range agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := c.HTTP(a.Host, time.Second)
			for ctx.Err() == nil {
				if resp, err := hc.Get(a.URL() + "/readyz"); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					d := parseLoopLag(string(b))
					l.mu.Lock()
					l.worst[a.ID] = max(l.worst[a.ID], d)
					l.mu.Unlock()
				}
				select {
				case <-ctx.Done():
				case <-time.After(lagPoll):
				}
			}
		}()
	}
	return func() map[string]time.Duration {
		cancel()
		wg.Wait()
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.worst
	}
}

// lagNote formats the worst lags for a figure's note.
func lagNote(w map[string]time.Duration) string {
	var parts []string
	for _, id := range sortedKeys(w) {
		if w[id] > 0 {
			parts = append(parts, fmt.Sprintf("%s %v", id, w[id].Round(time.Millisecond)))
		}
	}
	if len(parts) == 0 {
		return "agents' loop lag stayed under half a lease"
	}
	return "agents' timers ran late (/readyz loop-lag): " + strings.Join(parts, ", ")
}

func maxLag(w map[string]time.Duration) time.Duration {
	var m time.Duration
	for _, d := range w {
		m = max(m, d)
	}
	return m
}

// lagLimit is half a lease of the agents' profile (cmd/clusterd's ProfileTimers), in
// ms: the lag their /readyz tolerates.
func (e *env) lagLimit() float64 {
	lease := map[string]float64{"default": 150, "fast": 50, "relaxed": 800}[e.o.profile]
	return lease / 2
}
