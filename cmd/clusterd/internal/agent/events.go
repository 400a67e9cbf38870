package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Event ids beyond those in reconcile.go.
const (
	EventFailoverThreshold = 1254 // a resource failed over too often in its period: no more moves
	EventFailover          = 1201 // informational: a failover's timeline (clusterd's own id)
)

// Event is one operator-visible event, as logged and served at /v1/events.
type Event struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	ID       int               `json:"id"`
	Node     string            `json:"node"`
	Resource string            `json:"resource,omitempty"`
	Message  string            `json:"message"`
	Timeline map[string]string `json:"timeline,omitempty"` // failover phases: RFC 3339 times
}

// eventLog keeps the last events of this node and wakes followers.
type eventLog struct {
	node string
	log  *slog.Logger

	mu     sync.Mutex // guards the fields below
	seq    uint64
	ring   []Event
	notify chan struct{} // closed and replaced on every new event
}

// eventKeep bounds the events kept in memory per node.
const eventKeep = 1000

func newEventLog(node string, log *slog.Logger) *eventLog {
	return &eventLog{node: node, log: log, notify: make(chan struct{})}
}

// add records an event and logs it with its stable id.
func (e *eventLog) add(id int, resource, msg string, timeline map[string]string) {
	e.mu.Lock()
	e.seq++
	ev := Event{Seq: e.seq, Time: time.Now().UTC(), ID: id, Node: e.node, Resource: resource, Message: msg, Timeline: timeline}
	e.ring = append(e.ring, ev)
	if len(e.ring) > eventKeep {
		e.ring = e.ring[len(e.ring)-eventKeep:]
	}
	close(e.notify)
	e.notify = make(chan struct{})
	e.mu.Unlock()
	args := []any{"event", id, "node", e.node}
	if resource != "" {
		args = append(args, "resource", resource)
	}
	for k, v := range timeline {
		args = append(args, k, v)
	}
	level := slog.LevelWarn
	if id == EventFailover {
		level = slog.LevelInfo
	}
	e.log.Log(context.Background(), level, msg, args...)
}

// since returns events after seq and a channel closed when a newer one arrives.
func (e *eventLog) since(seq uint64) ([]Event, <-chan struct{}) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []Event
	for _, ev := range e.ring {
		if ev.Seq > seq {
			out = append(out, ev)
		}
	}
	return out, e.notify
}

// event records an event (log, /v1/events, the events counter).
func (a *Agent) event(id int, resource, msg string, timeline map[string]string) {
	a.events.add(id, resource, msg, timeline)
	if a.met != nil {
		a.met.events.WithLabelValues(strconv.Itoa(id)).Inc()
	}
}

// resourceAt names the resource whose address is ip ("" if none).
func (a *Agent) resourceAt(ip netip.Addr) string {
	a.live.mu.Lock()
	defer a.live.mu.Unlock()
	return a.live.byIP[ip]
}

// localEvents serves this node's events after ?after=SEQ; with ?wait=DURATION it
// waits (at most that long) for a newer one.
func (a *Agent) localEvents(w http.ResponseWriter, r *http.Request) {
	after, _ := strconv.ParseUint(r.URL.Query().Get("after"), 10, 64)
	wait, _ := time.ParseDuration(r.URL.Query().Get("wait"))
	evs, ch := a.events.since(after)
	if len(evs) == 0 && wait > 0 {
		select {
		case <-ch:
			evs, _ = a.events.since(after)
		case <-time.After(min(wait, time.Minute)):
		case <-r.Context().Done():
		}
	}
	if evs == nil {
		evs = []Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(evs)
}

// clusterEvents merges every node's events, oldest first (nodes that do not answer
// within a moment are left out).
func (a *Agent) clusterEvents(w http.ResponseWriter, r *http.Request) {
	st, _ := a.store.State()
	var mu sync.Mutex
	var all []Event
	own, _ := a.events.since(0)
	all = append(all, own...)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 500 * time.Millisecond, Transport: a.peerTransport()}
	for id, n := range st.Nodes {
		if id == a.cfg.NodeID || n.APIAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var evs []Event
			if a.peerGet(r.Context(), client, n.APIAddr, "/v1/local/events", &evs) == nil {
				mu.Lock()
				all = append(all, evs...)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Slice(all, func(i, j int) bool { return all[i].Time.Before(all[j].Time) })
	if all == nil {
		all = []Event{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(all)
}
