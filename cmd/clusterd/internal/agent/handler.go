package agent

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/clusterd/clusterd/health/api"
)

// handler is the agent's HTTP surface: the JSON API under /v1/, the node-internal
// calls, and the health endpoints.
func (a *Agent) handler() http.Handler {
	v1 := http.NewServeMux()
	v1.Handle("/v1/", api.Handler(backend{a}, a.log.With("component", "api")))
	v1.HandleFunc("GET /v1/local", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.localView())
	})
	v1.HandleFunc("GET /v1/local/events", a.localEvents)
	v1.HandleFunc("GET /v1/events", a.clusterEvents)
	mux := http.NewServeMux()
	mux.Handle("/v1/", a.requireToken(v1))
	mux.Handle("GET /metrics", a.met.handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", a.readyz)
	return mux
}

// readyz answers 200 only when raft has a leader, this node is in the node list and
// its last reconcile converged; one [+]/[-] line per check says why.
func (a *Agent) readyz(w http.ResponseWriter, r *http.Request) {
	type check struct {
		name   string
		ok     bool
		reason string
	}
	leaderID, _ := a.store.Leader()
	st, _ := a.store.State()
	_, member := st.Nodes[a.cfg.NodeID]
	failed := 0
	for _, o := range a.obs.snapshot() {
		if o.State == api.StateFailed {
			failed++
		}
	}
	reachable := a.live.reachable()
	_, worst := a.lag.Lag()
	checks := []check{
		{"raft-leader", leaderID != "", "no raft leader: a majority of voters is unreachable"},
		{"member", member, "this node is not in the cluster's node list yet"},
		{"lease", reachable, a.leaseReadyReason()},
		{"fsm", a.store.Err() == nil, fmt.Sprintf("the replicated state stopped applying: %v (upgrade this node's clusterd)", a.store.Err())},
		{"reconcile", failed == 0, fmt.Sprintf("%d resources failed on this node (see `clusterd status`)", failed)},
		{"loop-lag", worst < a.timers.Lease/2, fmt.Sprintf("the agent's timers ran %s late (limit %s): the machine is overloaded and leases may lapse", worst.Round(time.Millisecond), a.timers.Lease/2)},
	}
	code := http.StatusOK
	for _, c := range checks {
		if !c.ok {
			code = http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	for _, c := range checks {
		if c.ok {
			fmt.Fprintf(w, "[+] %s ok\n", c.name)
		} else {
			fmt.Fprintf(w, "[-] %s failed: %s\n", c.name, c.reason)
		}
	}
}
