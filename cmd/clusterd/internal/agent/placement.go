package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
)

// placementPeriod re-runs placement when nothing triggered it (failback windows open
// with the clock, not with an event).
const placementPeriod = time.Second

// releaseWait bounds how long a graceful move waits for the old holder to confirm the
// release before it gives up on the move (the resource stays unassigned and placement
// takes it up again).
const releaseWait = 3 * time.Second

// moveLocks keeps resources in the middle of a graceful move out of placement.
type moveLocks struct {
	mu sync.Mutex // guards m
	m  map[string]bool
}

func newMoveLocks() *moveLocks { return &moveLocks{m: make(map[string]bool)} }

func (l *moveLocks) lock(names []string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		if l.m[n] {
			return false
		}
	}
	for _, n := range names {
		l.m[n] = true
	}
	return true
}

func (l *moveLocks) unlock(names []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range names {
		delete(l.m, n)
	}
}

func (l *moveLocks) held() map[string]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]bool, len(l.m))
	for k := range l.m {
		out[k] = true
	}
	return out
}

// placementInput builds placement's input from the state, leaving out resources in
// the middle of a graceful move.
func (a *Agent) placementInput(st consensus.State) consensus.Input {
	alive := make(map[string]bool, len(st.Nodes))
	for id := range st.Nodes {
		alive[id] = a.live.Alive(id)
	}
	in := consensus.Input{Nodes: st.Nodes, Alive: alive, Resources: a.withoutAvoided(st, st.Resources), Assignments: st.Assignments, Now: time.Now()}
	locked := a.moves.held()
	if len(locked) == 0 {
		return in
	}
	all := in.Resources
	in.Resources = make(map[string]consensus.Resource, len(all))
	for k, v := range all {
		if !locked[k] {
			in.Resources[k] = v
		}
	}
	in.Assignments = make(map[string]consensus.Assignment, len(st.Assignments))
	for k, v := range st.Assignments {
		if !locked[k] {
			in.Assignments[k] = v
		}
	}
	return in
}

// runPlacement is the leader's loop: whenever nodes, liveness or resources change it
// runs placement and commits only the differences.
//
// It also wakes when the first holder it counts alive would be dead (its last renewal
// Lease+Margin old) if nothing is heard from it by then, rather than on the lease
// loop's next Renew tick: a failover starts the moment the voters may confirm the new
// holder, not up to a Renew later (measured: 0-25 ms of every default failover).
func (a *Agent) runPlacement(ctx context.Context) error {
	tick := time.NewTicker(placementPeriod)
	defer tick.Stop()
	dead := time.NewTimer(time.Hour)
	defer dead.Stop()
	var holders []string   // nodes holding resources at the last look
	var quiet placementKey // the input of the last pass that moved nothing
	var windows windowCache
	changes := a.store.Changes()
	for {
		periodic := false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changes:
		case <-a.live.Changes():
		case <-tick.C:
			periodic = true
		case <-dead.C:
			if next, died := a.nextDeath(holders); !died {
				dead.Reset(next) // renewed in time: no need to copy the state and plan
				continue
			}
		}
		if !a.store.IsLeader() {
			continue // the timer stays stopped; becoming leader is a store change
		}
		st, _ := a.store.State()
		holders = a.liveHolders(st)
		next, _ := a.nextDeath(holders)
		dead.Reset(next)
		if st.Maintenance {
			continue // frozen: no moves, no failovers started by the cluster (leases still hold)
		}
		in := a.placementInput(st)
		key := a.placementKey(in, st, &windows)
		if periodic && key.valid && key == quiet {
			continue // nothing placement reads has changed since it last moved nothing
		}
		moves := consensus.Place(in)
		if len(moves) == 0 {
			quiet = key
			continue
		}
		quiet = placementKey{}
		if err := a.commitMoves(ctx, moves, st.Revision); err != nil {
			a.log.Warn("placement not committed; will retry", "err", err)
		}
	}
}

// placementKey sums up a placement input for the periodic pass: with the same key,
// a pass that moved nothing would move nothing again. Only inputs that change
// without a state revision or a liveness notice are in it (liveness itself, for
// nodes in their start-up grace); it is not valid while the clock matters (a
// failback window, a health-check avoidance that runs out) or a graceful move holds
// resources out. At 1,000 resources the pass it saves cost 0.15 % of a core.
type placementKey struct {
	valid    bool
	revision uint64
	alive    string // the nodes alive, in order
}

func (a *Agent) placementKey(in consensus.Input, st consensus.State, w *windowCache) placementKey {
	if len(in.Resources) != len(st.Resources) || a.avoiding() || w.has(st) {
		return placementKey{}
	}
	var b strings.Builder
	for _, id := range sortedIDs(st.Nodes) {
		if in.Alive[id] {
			b.WriteString(id)
			b.WriteByte(0)
		}
	}
	return placementKey{valid: true, revision: st.Revision, alive: b.String()}
}

// windowCache remembers, per state revision, whether a resource fails back in a
// time window.
type windowCache struct {
	revision uint64
	known    bool
	windows  bool
}

func (w *windowCache) has(st consensus.State) bool {
	if !w.known || w.revision != st.Revision {
		w.revision, w.known, w.windows = st.Revision, true, false
		for _, r := range st.Resources {
			if strings.HasPrefix(r.Failback, "window:") {
				w.windows = true
				break
			}
		}
	}
	return w.windows
}

// deathSlack is added to a holder's death time before placement looks again, so the
// look finds it past Lease+Margin rather than a hair before.
const deathSlack = time.Millisecond

// liveHolders lists the nodes other than this one that hold a resource in st and
// count as alive now: the ones whose death the placement loop waits for.
func (a *Agent) liveHolders(st consensus.State) []string {
	seen := make(map[string]bool, len(st.Nodes))
	var out []string
	for _, asg := range st.Assignments {
		if n := asg.Node; n != "" && n != a.cfg.NodeID && !seen[n] {
			seen[n] = true
			if a.live.Alive(n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// nextDeath returns how long until the first of holders that counts as alive would
// count as dead if it is not heard from again (at most placementPeriod), and whether
// one of them is dead now. Nodes in their start-up grace are left to the periodic
// look.
func (a *Agent) nextDeath(holders []string) (next time.Duration, died bool) {
	next = placementPeriod
	limit := a.timers.Lease + a.timers.Margin
	for _, node := range holders {
		if !a.live.Alive(node) {
			died = true
			continue
		}
		if left := limit - a.live.Silent(node); left > 0 {
			next = min(next, left+deathSlack)
		}
	}
	return next, died
}

// logMoves logs a plan: a line per move for a few, or per (from, to, reason) with a
// count and the first resources for many (a failover of 2,000 wrote 2,000 lines).
func logMoves(log *slog.Logger, moves []consensus.Move) {
	const each = 8
	if len(moves) <= each {
		for _, m := range moves {
			log.Info("placement", "resource", m.Resource, "from", m.From, "to", m.To, "reason", m.Reason.String())
		}
		return
	}
	type route struct {
		from, to string
		reason   consensus.Reason
	}
	byRoute := map[route][]string{}
	var order []route
	for _, m := range moves {
		r := route{m.From, m.To, m.Reason}
		if _, ok := byRoute[r]; !ok {
			order = append(order, r)
		}
		byRoute[r] = append(byRoute[r], m.Resource)
	}
	for _, r := range order {
		names := byRoute[r]
		log.Info("placement", "count", len(names), "from", r.from, "to", r.to, "reason", r.reason.String(),
			"first", strings.Join(names[:min(len(names), each)], " "))
	}
}

// commitMoves commits a plan. Moves away from a node that is alive are graceful: the
// old node releases first, then the new node adds. Moves from dead nodes and fresh
// placements are committed at once, in one entry.
func (a *Agent) commitMoves(ctx context.Context, moves []consensus.Move, revision uint64) error {
	var direct, graceful []consensus.Move
	for _, m := range moves {
		if m.From != "" && m.To != "" && a.live.Alive(m.From) {
			graceful = append(graceful, m)
		} else {
			direct = append(direct, m)
		}
	}
	logMoves(a.log, moves)
	if len(direct) > 0 {
		start := time.Now()
		if _, err := a.store.Apply(ctx, consensus.AssignMoves(direct, revision)); err != nil {
			return err
		}
		a.noteFailovers(direct, start, time.Now())
	}
	if len(graceful) > 0 {
		return a.moveGracefully(ctx, graceful, false)
	}
	return nil
}

// moveGracefully unassigns, waits until every old holder has released, then assigns
// the new holders: never two holders, and the outage is one release plus one add.
// manual marks an operator's choice, which failback never undoes.
func (a *Agent) moveGracefully(ctx context.Context, moves []consensus.Move, manual bool) error {
	names := make([]string, len(moves))
	for i, m := range moves {
		names[i] = m.Resource
	}
	if !a.moves.lock(names) {
		return fmt.Errorf("%w: a move of %v is already in progress", api.ErrConflict, names)
	}
	defer a.moves.unlock(names)
	if _, err := a.store.Apply(ctx, consensus.Unassign(names...)); err != nil {
		return err
	}
	if err := a.waitReleased(ctx, moves); err != nil {
		return err
	}
	as := make([]consensus.Assignment, len(moves))
	for i, m := range moves {
		as[i] = consensus.Assignment{Resource: m.Resource, Node: m.To, Manual: manual}
	}
	_, err := a.store.Apply(ctx, consensus.Assign(as...))
	return err
}

// waitReleased polls the old holders until none reports the moved resources. A
// holder that stops answering is waited out for its lease.
func (a *Agent) waitReleased(ctx context.Context, moves []consensus.Move) error {
	st, _ := a.store.State()
	byNode := map[string][]string{}
	for _, m := range moves {
		byNode[m.From] = append(byNode[m.From], m.Resource)
	}
	client := &http.Client{Timeout: 200 * time.Millisecond, Transport: a.peerTransport()}
	deadline := time.Now().Add(releaseWait)
	for node, names := range byNode {
		for {
			holds, err := a.stillHolds(ctx, client, st.Nodes[node], names)
			if err == nil && !holds {
				break
			}
			if err != nil && !a.live.Alive(node) {
				// Unreachable and its lease ran out: it can no longer hold them.
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("node %s did not release %v within %s; the move is abandoned and placement will retry", node, names, releaseWait)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(2 * time.Millisecond):
			}
		}
	}
	return nil
}

func (a *Agent) stillHolds(ctx context.Context, c *http.Client, n consensus.Node, names []string) (bool, error) {
	var v localView
	if n.ID == a.cfg.NodeID {
		v = a.localView()
	} else if err := getJSON(ctx, c, a.scheme()+n.APIAddr+"/v1/local", &v); err != nil {
		return false, err
	}
	for _, name := range names {
		if _, ok := v.Resources[name]; ok {
			return true, nil
		}
	}
	return false, nil
}

func (b backend) Move(ctx context.Context, name string, req api.MoveRequest) (api.WriteResult, error) {
	a := b.a
	st, _ := a.store.State()
	r, ok := st.Resources[name]
	if !ok {
		return api.WriteResult{}, fmt.Errorf("%w: no resource %q (list them with `clusterd resource list`)", api.ErrNotFound, name)
	}
	from := st.Assignments[name].Node
	to := req.To
	if req.AwayFrom != "" {
		var err error
		if to, err = a.healthMove(st, name, req); err != nil {
			return api.WriteResult{}, err
		}
	}
	if to != "" {
		n, ok := st.Nodes[to]
		switch {
		case !ok:
			return api.WriteResult{}, fmt.Errorf("%w: no node %q (list them with `clusterd nodes`)", api.ErrNotFound, to)
		case n.Draining:
			return api.WriteResult{}, fmt.Errorf("%w: node %s is draining (run `clusterd undrain %s` first)", api.ErrConflict, to, to)
		case !a.live.Alive(to):
			return api.WriteResult{}, fmt.Errorf("%w: node %s is down", api.ErrConflict, to)
		case len(r.PossibleOwners) > 0 && !contains(r.PossibleOwners, to):
			return api.WriteResult{}, fmt.Errorf("%w: node %s is not among %s's possible owners %v", api.ErrConflict, to, name, r.PossibleOwners)
		}
	} else {
		to = a.pickOther(st, name, from)
		if to == "" {
			return api.WriteResult{}, fmt.Errorf("%w: no other node may hold %s (check possible owners, drained and down nodes)", api.ErrConflict, name)
		}
	}
	if to == from {
		return api.WriteResult{}, nil
	}
	names := []string{name}
	if r.Group != "" {
		names = groupMembers(st, r.Group)
	}
	var moves []consensus.Move
	for _, n := range names {
		moves = append(moves, consensus.Move{Resource: n, From: st.Assignments[n].Node, To: to, Reason: "move"})
	}
	if err := a.moveGracefully(ctx, moves, req.AwayFrom == ""); err != nil {
		return api.WriteResult{}, err
	}
	_, idx := a.store.State()
	res := api.WriteResult{Index: idx}
	for _, m := range moves {
		res.Moves = append(res.Moves, api.Move{Resource: m.Resource, From: m.From, To: m.To})
	}
	return res, nil
}

// pickOther chooses the least-loaded alive, non-draining allowed node other than
// from, preferring nodes that did not fail the resource's health checks recently.
func (a *Agent) pickOther(st consensus.State, name, from string) string {
	r := st.Resources[name]
	load := map[string]int{}
	for _, asg := range st.Assignments {
		load[asg.Node]++
	}
	for _, skipAvoided := range []bool{true, false} {
		best := ""
		for _, id := range sortedIDs(st.Nodes) {
			n := st.Nodes[id]
			if id == from || n.Draining || !a.live.Alive(id) || (skipAvoided && a.avoided(name, id)) || (len(r.PossibleOwners) > 0 && !contains(r.PossibleOwners, id)) {
				continue
			}
			if best == "" || load[id] < load[best] {
				best = id
			}
		}
		if best != "" {
			return best
		}
	}
	return ""
}

func groupMembers(st consensus.State, group string) []string {
	var out []string
	for _, name := range sortedIDs(st.Resources) {
		if st.Resources[name].Group == group {
			out = append(out, name)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (b backend) Rebalance(ctx context.Context, dryRun bool) (api.WriteResult, error) {
	a := b.a
	st, idx := a.store.State()
	moves := consensus.Rebalance(a.placementInput(st))
	res := api.WriteResult{Index: idx}
	for _, m := range moves {
		res.Moves = append(res.Moves, api.Move{Resource: m.Resource, From: m.From, To: m.To})
	}
	if dryRun || len(moves) == 0 {
		return res, nil
	}
	if err := a.commitMoves(ctx, moves, st.Revision); err != nil {
		return res, err
	}
	_, res.Index = a.store.State()
	return res, nil
}

// noteFailovers records, per failed node, the detection and commit phases of the
// failover the leader just committed.
func (a *Agent) noteFailovers(moves []consensus.Move, planned, committed time.Time) {
	byNode := map[string][]string{}
	for _, m := range moves {
		if m.Reason == consensus.ReasonFailover && m.From != "" {
			byNode[m.From] = append(byNode[m.From], m.Resource)
		}
	}
	for node, names := range byNode {
		silent := a.live.Silent(node) - time.Since(planned)
		a.met.failoverPhase.WithLabelValues("detect").Observe(silent.Seconds())
		a.met.failoverPhase.WithLabelValues("commit").Observe(committed.Sub(planned).Seconds())
		f := func(x time.Time) string { return x.UTC().Format(time.RFC3339Nano) }
		subject := strings.Join(names, ",")
		if len(names) > 10 {
			subject = ""
		}
		a.event(EventFailover, subject, fmt.Sprintf("failover of %d resources from %s: detected after %s without renewal, committed %s later",
			len(names), node, silent.Round(time.Millisecond), committed.Sub(planned).Round(time.Millisecond)),
			map[string]string{"detected": f(planned), "committed": f(committed), "last_renewal": f(planned.Add(-silent))})
	}
}
