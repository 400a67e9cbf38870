package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// liveness tracks which nodes renewed recently. Every node renews with the raft
// leader every Renew; the leader considers a node down when it has not heard from it
// for Lease. Raft's own transport errors take seconds to surface, far too slow for
// failover; this is the lease-style renewal the placement loop uses.
type liveness struct {
	self   string
	timers Timers
	log    *slog.Logger
	client *http.Client

	mu        sync.Mutex           // guards the fields below
	lastSeen  map[string]time.Time // by node id, monotonic readings
	wasLeader bool
	alive     map[string]bool // last published view
	changes   chan struct{}
}

func newLiveness(self string, t Timers, log *slog.Logger) *liveness {
	return &liveness{
		self: self, timers: t, log: log,
		client:   &http.Client{Timeout: t.Lease, Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}},
		lastSeen: make(map[string]time.Time),
		alive:    make(map[string]bool),
		changes:  make(chan struct{}, 1),
	}
}

// saw records a renewal from a node.
func (l *liveness) saw(id string) {
	l.mu.Lock()
	l.lastSeen[id] = time.Now()
	l.mu.Unlock()
}

// Alive reports whether the node renewed within the lease.
func (l *liveness) Alive(id string) bool {
	if id == l.self {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.lastSeen[id]
	return ok && time.Since(t) < l.timers.Lease
}

// Changes is notified when a node's liveness changes.
func (l *liveness) Changes() <-chan struct{} { return l.changes }

// leaderView is what liveness needs from the agent.
type leaderView interface {
	leaderAPI() (self bool, url string)
	nodeIDs() []string
}

// Run renews with the leader and, on the leader, publishes liveness changes.
func (l *liveness) Run(ctx context.Context, v leaderView) error {
	t := time.NewTicker(l.timers.Renew)
	defer t.Stop()
	body, _ := json.Marshal(map[string]string{"id": l.self})
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		self, url := v.leaderAPI()
		l.leadership(self, v.nodeIDs())
		if !self && url != "" {
			go l.renew(ctx, url, body)
		}
		l.publish(v.nodeIDs())
	}
}

// leadership gives every node a full lease when this node becomes leader: it has
// heard from nobody yet, and must not fail everyone over for that. Both the renewal
// loop and the placement loop call it before they read liveness, so whichever sees
// the new leadership first grants the grace.
func (l *liveness) leadership(self bool, ids []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if self && !l.wasLeader {
		now := time.Now()
		for _, id := range ids {
			l.lastSeen[id] = now
		}
	}
	l.wasLeader = self
}

func (l *liveness) renew(ctx context.Context, url string, body []byte) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/internal/renew", bytes.NewReader(body))
	if err != nil {
		return
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return
	}
	resp.Body.Close()
}

func (l *liveness) publish(ids []string) {
	changed := false
	now := make(map[string]bool, len(ids))
	for _, id := range ids {
		now[id] = l.Alive(id)
	}
	l.mu.Lock()
	for id, up := range now {
		if l.alive[id] != up {
			changed = true
			if l.wasLeader {
				l.log.Info("node liveness changed", "node", id, "alive", up)
			}
		}
	}
	l.alive = now
	l.mu.Unlock()
	if changed {
		select {
		case l.changes <- struct{}{}:
		default:
		}
	}
}
