package consensus

import (
	"context"
	"errors"
	"log/slog"
	"time"
)

// Liveness tells placement which nodes are alive. Alive(id) false makes placement
// fail the node's resources over, so an implementation must answer true for a node
// it has no verdict on yet (a grace period after start and after this node becomes
// leader), or a new leader would move everything.
type Liveness interface {
	Alive(nodeID string) bool
	// Changes returns a channel that receives a value (coalescing, never blocking
	// the sender) after any node's verdict changes. Placer calls it once, in Run.
	Changes() <-chan struct{}
}

// Placer is the leader's placement loop: while this node leads, it runs Place
// whenever the state or liveness changes and commits the moves as one assign
// command (IfRevision = the revision it planned from, so a plan made from a stale
// read is refused and redone).
type Placer struct {
	store *Store
	live  Liveness
	log   *slog.Logger
	now   func() time.Time

	// Recheck re-plans this often without any change, so failback windows open on
	// time and a failed commit is retried (default 30s: windows have minute
	// resolution).
	Recheck time.Duration
	// RetryDelay is the wait after a failed commit before planning again (default 1s).
	RetryDelay time.Duration
}

// NewPlacer returns a placement loop over store and liveness; Run starts it. The
// store's Run must also be running: it reports leadership changes.
func NewPlacer(store *Store, live Liveness, logger *slog.Logger) *Placer {
	if logger == nil {
		logger = slog.Default()
	}
	return &Placer{store: store, live: live, log: logger, now: time.Now, Recheck: 30 * time.Second, RetryDelay: time.Second}
}

// Run plans and commits until ctx is done, then returns nil.
func (p *Placer) Run(ctx context.Context) error {
	changes, liveChanges := p.store.Changes(), p.live.Changes()
	recheck := time.NewTicker(p.Recheck)
	defer recheck.Stop()
	var retry <-chan time.Time
	wasLeader := false
	for {
		leader := p.store.IsLeader()
		if leader && p.store.Err() == nil {
			if err := p.placeOnce(ctx, !wasLeader); err != nil && ctx.Err() == nil {
				if !errors.Is(err, ErrStale) && !errors.Is(err, ErrNotLeader) {
					p.log.Warn("placement not committed; retrying", "err", err, "retry_in", p.RetryDelay)
				}
				retry = time.After(p.RetryDelay)
			}
		}
		wasLeader = leader
		select {
		case <-ctx.Done():
			return nil
		case <-changes:
		case <-liveChanges:
		case <-recheck.C:
		case <-retry:
			retry = nil
		}
	}
}

// placeOnce plans from the current state and commits the moves, if any. A new
// leader first waits until it has applied everything committed before it.
func (p *Placer) placeOnce(ctx context.Context, newLeader bool) error {
	if newLeader {
		if err := p.store.barrier(ctx); err != nil {
			return err
		}
	}
	st, _ := p.store.State()
	alive := make(map[string]bool, len(st.Nodes))
	for id := range st.Nodes {
		alive[id] = p.live.Alive(id)
	}
	moves := Place(Input{Nodes: st.Nodes, Alive: alive, Resources: st.Resources, Assignments: st.Assignments, Now: p.now()})
	if len(moves) == 0 {
		return nil
	}
	index, err := p.store.Apply(ctx, AssignMoves(moves, st.Revision))
	if err != nil {
		return err
	}
	reasons := map[Reason]int{}
	for _, m := range moves {
		reasons[m.Reason]++
		p.log.Debug("placement move", "resource", m.Resource, "from", m.From, "to", m.To, "reason", m.Reason.String(), "epoch", index)
	}
	p.log.Info("placement committed", "moves", len(moves), "reasons", reasons, "epoch", index)
	return nil
}
