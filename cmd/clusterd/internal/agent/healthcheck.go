package agent

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health"
	"github.com/clusterd/clusterd/health/api"
	"golang.org/x/sys/unix"
)

// Health failover limits (Windows failover clustering's "maximum failures in the
// specified period", event 1254) and how long a node that failed a resource's checks
// is kept from getting it back.
const (
	flapMax    = 3
	flapPeriod = 15 * time.Minute
	avoidFor   = 30 * time.Second
	checkTick  = 250 * time.Millisecond
)

// checker runs the health checks of the resources this node holds, plus the carrier
// of their interfaces, and asks the leader to move a resource that turns unhealthy.
type checker struct {
	mu     sync.Mutex // guards the fields below
	states map[string][]health.State
	due    map[string][]time.Time
	bad    map[string]string // resource → why it is unhealthy here
	asked  map[string]time.Time
}

// leader-side bookkeeping of health moves.
type healthMoves struct {
	mu    sync.Mutex // guards the fields below
	flaps map[string]*health.Flaps
	avoid map[[2]string]time.Time // (resource, node) → until
}

func (a *Agent) runChecks(ctx context.Context) error {
	a.chk.states, a.chk.due, a.chk.bad, a.chk.asked = map[string][]health.State{}, map[string][]time.Time{}, map[string]string{}, map[string]time.Time{}
	results := make(chan checkResult, 64)
	inflight := map[[2]any]bool{}
	var plan checkPlan
	t := time.NewTicker(checkTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case r := <-results:
			delete(inflight, [2]any{r.resource, r.index})
			a.observeCheck(ctx, r)
		case now := <-t.C:
			a.updateCheckPlan(&plan)
			a.checkCarriers(ctx, &plan)
			for _, name := range plan.checked {
				a.startChecks(ctx, name, plan.st.Resources[name], now, inflight, results)
			}
		}
	}
}

// checkPlan is what a check tick works through, rebuilt only when the held set or
// the state changes: with 1,000 addresses and few checks, a tick costs one link
// lookup per interface, not a pass over every address.
type checkPlan struct {
	heldGen    uint64
	revision   uint64
	st         consensus.State     // shared, read-only
	byLink     map[string][]string // interface → held resources on it
	checked    []string            // held resources with health checks
	carrierBad map[string]bool     // interfaces last seen without carrier
}

func (a *Agent) updateCheckPlan(p *checkPlan) {
	gen := a.live.heldGeneration()
	st := a.live.stateView()
	if p.byLink != nil && gen == p.heldGen && st.Revision == p.revision {
		return
	}
	held, gen := a.live.heldNames()
	p.heldGen, p.revision, p.st = gen, st.Revision, st
	p.byLink, p.checked = map[string][]string{}, nil
	if p.carrierBad == nil {
		p.carrierBad = map[string]bool{}
	}
	for name := range held {
		r, ok := st.Resources[name]
		if !ok || st.Assignments[name].Node != a.cfg.NodeID {
			continue
		}
		p.byLink[r.Interface] = append(p.byLink[r.Interface], name)
		if len(r.Checks) > 0 {
			p.checked = append(p.checked, name)
		}
	}
	a.chk.mu.Lock()
	for name := range a.chk.states {
		if _, ok := held[name]; !ok {
			delete(a.chk.states, name)
			delete(a.chk.due, name)
			delete(a.chk.bad, name)
		}
	}
	a.chk.mu.Unlock()
}

// checkCarriers looks at each interface's carrier once and marks its resources
// unhealthy here while it is down.
func (a *Agent) checkCarriers(ctx context.Context, p *checkPlan) {
	for link, names := range p.byLink {
		l, err := a.handle.LinkByName(link)
		up := err != nil || l.Attrs().RawFlags&unix.IFF_RUNNING != 0
		if up && !p.carrierBad[link] {
			continue
		}
		p.carrierBad[link] = !up
		for _, name := range names {
			a.checkCarrier(ctx, name, p.st.Resources[name], up)
		}
	}
}

// startChecks starts the checks of one held resource that are due.
func (a *Agent) startChecks(ctx context.Context, name string, r consensus.Resource, now time.Time, inflight map[[2]any]bool, results chan<- checkResult) {
	a.chk.mu.Lock()
	defer a.chk.mu.Unlock()
	if len(a.chk.states[name]) != len(r.Checks) {
		a.chk.states[name] = make([]health.State, len(r.Checks))
		a.chk.due[name] = make([]time.Time, len(r.Checks))
	}
	for i, spec := range r.Checks {
		key := [2]any{name, i}
		if inflight[key] || now.Before(a.chk.due[name][i]) {
			continue
		}
		a.chk.due[name][i] = now.Add(spec.WithDefaults().Interval)
		inflight[key] = true
		go func() {
			err := spec.ProbeStarted(ctx, childScheduling)
			select {
			case results <- checkResult{resource: name, index: i, spec: spec, err: err}:
			case <-ctx.Done():
			}
		}()
	}
}

type checkResult struct {
	resource string
	index    int
	spec     health.Spec
	err      error
}

func (a *Agent) observeCheck(ctx context.Context, r checkResult) {
	a.chk.mu.Lock()
	states := a.chk.states[r.resource]
	if r.index >= len(states) {
		a.chk.mu.Unlock()
		return
	}
	changed := states[r.index].Observe(r.spec, r.err)
	unhealthy := states[r.index].Unhealthy
	if a.met != nil {
		res := "ok"
		if r.err != nil {
			res = "fail"
		}
		a.met.checkResults.WithLabelValues(r.spec.String(), res).Inc()
	}
	var why string
	if unhealthy {
		why = fmt.Sprintf("health check %s failed %d times in a row: %v", r.spec, r.spec.WithDefaults().Fall, states[r.index].Last)
		a.chk.bad[r.resource] = why
	} else if changed {
		delete(a.chk.bad, r.resource)
	}
	a.chk.mu.Unlock()
	if changed {
		a.poke()
		if unhealthy {
			a.askMoveAway(ctx, r.resource, why)
		}
	}
}

// checkCarrier treats a resource whose interface lost its carrier as unhealthy here.
func (a *Agent) checkCarrier(ctx context.Context, name string, r consensus.Resource, up bool) {
	down := !up
	a.chk.mu.Lock()
	why, was := a.chk.bad[name]
	carrierWhy := "interface " + r.Interface + " has no carrier"
	switch {
	case down && !was:
		a.chk.bad[name] = carrierWhy
	case !down && was && why == carrierWhy:
		delete(a.chk.bad, name)
	}
	a.chk.mu.Unlock()
	if down && !was {
		a.poke()
		a.askMoveAway(ctx, name, carrierWhy)
	}
}

// unhealthy says why a held resource is unhealthy here ("" if it is not).
func (a *Agent) unhealthy(name string) string {
	a.chk.mu.Lock()
	defer a.chk.mu.Unlock()
	return a.chk.bad[name]
}

// askMoveAway asks the leader to move the resource off this node (at most once a
// second per resource).
func (a *Agent) askMoveAway(ctx context.Context, name, why string) {
	a.chk.mu.Lock()
	if t, ok := a.chk.asked[name]; ok && time.Since(t) < time.Second {
		a.chk.mu.Unlock()
		return
	}
	a.chk.asked[name] = time.Now()
	a.chk.mu.Unlock()
	req := api.MoveRequest{AwayFrom: a.cfg.NodeID, Reason: why}
	go func() {
		var err error
		if self, url := a.leaderAPI(); self {
			_, err = backend{a}.Move(ctx, name, req)
		} else if url != "" {
			c := api.NewClient(url)
			c.Token, c.HTTP = a.token, &http.Client{Timeout: 10 * time.Second, Transport: a.baseTransport()}
			_, err = c.Move(ctx, name, req)
		} else {
			err = fmt.Errorf("no raft leader to ask")
		}
		if err != nil {
			a.log.Warn("could not move an unhealthy resource away", "resource", name, "why", why, "err", err)
		}
	}()
}

// healthMove is the leader's side of a holder's request: move off AwayFrom unless the
// resource failed over too often (event 1254).
func (a *Agent) healthMove(st consensus.State, name string, req api.MoveRequest) (string, error) {
	from := st.Assignments[name].Node
	if from != req.AwayFrom {
		return "", fmt.Errorf("%w: %s is no longer on %s", api.ErrConflict, name, req.AwayFrom)
	}
	a.hm.mu.Lock()
	if a.hm.flaps == nil {
		a.hm.flaps, a.hm.avoid = map[string]*health.Flaps{}, map[[2]string]time.Time{}
	}
	f := a.hm.flaps[name]
	if f == nil {
		f = &health.Flaps{Max: flapMax, Period: flapPeriod}
		a.hm.flaps[name] = f
	}
	allowed := f.Allow(time.Now())
	if allowed {
		a.hm.avoid[[2]string{name, from}] = time.Now().Add(avoidFor)
	}
	a.hm.mu.Unlock()
	if !allowed {
		msg := fmt.Sprintf("resource %s failed over %d times within %s; it stays on %s, failed, and will not be moved for health again until the period passes (fix the service, then `clusterd move %s`): %s",
			name, flapMax, flapPeriod, from, name, req.Reason)
		a.event(EventFailoverThreshold, name, msg, nil)
		return "", fmt.Errorf("%w: %s", api.ErrConflict, msg)
	}
	to := a.pickOther(st, name, from)
	if to == "" {
		return "", fmt.Errorf("%w: no other node may hold %s (check possible owners, drained and down nodes)", api.ErrConflict, name)
	}
	a.event(EventResourceFailed, name, fmt.Sprintf("resource %s unhealthy on %s (%s): moving it to %s", name, from, req.Reason, to), nil)
	return to, nil
}

// avoided reports whether node failed resource's checks recently.
func (a *Agent) avoided(resource, node string) bool {
	a.hm.mu.Lock()
	defer a.hm.mu.Unlock()
	until, ok := a.hm.avoid[[2]string{resource, node}]
	return ok && time.Now().Before(until)
}

// withoutAvoided narrows each resource's possible owners by the nodes that failed its
// checks recently (placement input only).
// avoiding reports whether any resource avoids a node after failed checks.
func (a *Agent) avoiding() bool {
	a.hm.mu.Lock()
	defer a.hm.mu.Unlock()
	return len(a.hm.avoid) > 0
}

func (a *Agent) withoutAvoided(st consensus.State, rs map[string]consensus.Resource) map[string]consensus.Resource {
	a.hm.mu.Lock()
	n := len(a.hm.avoid)
	a.hm.mu.Unlock()
	if n == 0 {
		return rs
	}
	out := make(map[string]consensus.Resource, len(rs))
	for name, r := range rs {
		var poss []string
		trimmed := false
		candidates := r.PossibleOwners
		if len(candidates) == 0 {
			candidates = sortedIDs(st.Nodes)
		}
		for _, id := range candidates {
			if a.avoided(name, id) {
				trimmed = true
				continue
			}
			poss = append(poss, id)
		}
		if trimmed && len(poss) > 0 {
			r.PossibleOwners = poss
			r.PreferredOwners = intersect(r.PreferredOwners, poss)
		}
		out[name] = r
	}
	return out
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		for _, y := range b {
			if x == y {
				out = append(out, x)
			}
		}
	}
	return out
}
