package consensus

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"
)

// Server is one entry of the raft configuration.
type Server struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	Voter    bool   `json:"voter"`
}

// AddVoter adds (or promotes) a voting server. Leader only.
func (s *Store) AddVoter(id, addr string) error {
	return s.membership("add voter "+id, s.raft.AddVoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout))
}

// AddNonvoter adds a server that receives the log but does not vote. Leader only.
func (s *Store) AddNonvoter(id, addr string) error {
	return s.membership("add non-voter "+id, s.raft.AddNonvoter(raft.ServerID(id), raft.ServerAddress(addr), 0, s.cfg.ApplyTimeout))
}

// RemoveServer removes a server from the raft configuration. Leader only. Its Node
// record (and assignments) stay until a RemoveNode command drops them.
func (s *Store) RemoveServer(id string) error {
	return s.membership("remove server "+id, s.raft.RemoveServer(raft.ServerID(id), 0, s.cfg.ApplyTimeout))
}

func (s *Store) membership(what string, f raft.IndexFuture) error {
	err := f.Error()
	if errors.Is(err, raft.ErrNotLeader) {
		return fmt.Errorf("%s: %w", what, s.notLeader())
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// Servers returns the latest raft configuration.
func (s *Store) Servers() ([]Server, error) {
	f := s.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("read raft configuration: %w", err)
	}
	var out []Server
	for _, srv := range f.Configuration().Servers {
		out = append(out, Server{ID: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter})
	}
	return out, nil
}

// Run observes leadership until ctx is done, then returns nil. It drains raft's
// leader observations without ever blocking raft (a full buffer drops, and the
// next wake re-reads the current leader), logs leader changes, wakes Changes
// subscribers, and while this node leads keeps its own Node record (id, raft and
// API address, voter) current in the replicated state.
func (s *Store) Run(ctx context.Context) error {
	obs := make(chan raft.Observation, 16)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	s.raft.RegisterObserver(o)
	defer s.raft.DeregisterObserver(o)
	changes := s.Changes()
	for {
		if s.IsLeader() {
			if err := s.registerSelf(ctx); err != nil && ctx.Err() == nil && !errors.Is(err, ErrStale) {
				s.log.Warn("cannot record this node in the replicated state; retrying on the next change",
					"node", s.cfg.NodeID, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case ob := <-obs:
			lo := ob.Data.(raft.LeaderObservation)
			s.log.Info("raft leader changed", "leader", string(lo.LeaderID), "leader_addr", string(lo.LeaderAddr),
				"node", s.cfg.NodeID, "term", s.raft.CurrentTerm())
			s.notify()
		case <-changes:
		}
	}
}

// registerSelf writes this node's record if it is missing or out of date, keeping
// what operators set (draining, labels). IfRevision makes a stale read harmless.
func (s *Store) registerSelf(ctx context.Context) error {
	want, rev, ok := s.fsm.node(s.cfg.NodeID)
	if ok && want.RaftAddr == s.RaftAddr() && want.APIAddr == s.cfg.APIAddr && want.Voter == s.cfg.Voter {
		return nil
	}
	if err := s.barrier(ctx); err != nil {
		return err
	}
	want.ID, want.RaftAddr, want.APIAddr, want.Voter = s.cfg.NodeID, s.RaftAddr(), s.cfg.APIAddr, s.cfg.Voter
	cmd := PutNode(want)
	cmd.IfRevision = rev
	if _, err := s.Apply(ctx, cmd); err != nil {
		return err
	}
	s.log.Info("recorded this node in the replicated state", "node", s.cfg.NodeID, "api_addr", s.cfg.APIAddr)
	return nil
}
