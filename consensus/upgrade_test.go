package consensus

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// A newer clusterd (say, the leader after its upgrade) writes a command of
// version CommandVersion+1. Every replica running this binary stops applying at
// that entry with ErrUnsupportedCommand and a message telling to upgrade, and its
// state stays exactly as it was, instead of skipping the entry and diverging
// from the upgraded replicas.
func TestNewerCommandHaltsEveryReplica(t *testing.T) {
	stores := newMemCluster(t, 3)
	leader := leaderOf(t, stores)
	before := mustApply(t, leader, PutNode(Node{ID: "n1", Voter: true}), ApplyResources(backupResources()),
		Assign(Assignment{Resource: "web", Node: "n1"}))
	waitApplied(t, before, stores...)
	want, _ := leader.State()

	future := fmt.Appendf(nil, `{"version":%d,"op":"put_node","node":{"id":"n9"}}`, CommandVersion+1)
	f := leader.raft.Apply(future, 5*time.Second)
	if err := f.Error(); err != nil {
		t.Fatalf("raft did not commit the entry: %v", err)
	}
	newer := f.Index()
	if err, _ := f.Response().(error); !errors.Is(err, ErrUnsupportedCommand) {
		t.Errorf("leader's apply response: got %v, want ErrUnsupportedCommand", f.Response())
	}
	wantMsg := fmt.Sprintf("raft index %d: log entry has command version %d, this binary understands 1 to %d "+
		"(upgrade clusterd on this node)", newer, CommandVersion+1, CommandVersion)
	for _, s := range stores {
		eventually(t, s.cfg.NodeID+" halting", func() bool { return s.Err() != nil })
		err := s.Err()
		if !errors.Is(err, ErrUnsupportedCommand) || !strings.Contains(err.Error(), wantMsg) {
			t.Errorf("%s Err: got %v, want ErrUnsupportedCommand with %q", s.cfg.NodeID, err, wantMsg)
		}
		got, applied := s.State()
		if !reflect.DeepEqual(got, want) || applied != before {
			t.Errorf("%s state changed by the halt (applied %d, want %d):\n got %+v\nwant %+v", s.cfg.NodeID, applied, before, got, want)
		}
		if _, err := s.ExportState(); !errors.Is(err, ErrUnsupportedCommand) {
			t.Errorf("%s ExportState while halted: got %v, want ErrUnsupportedCommand", s.cfg.NodeID, err)
		}
	}

	// Raft keeps replicating (the log is kept for an upgraded binary to replay),
	// but this binary applies nothing more, and refuses to snapshot.
	index, err := leader.Apply(context.Background(), PutResource(vip("later", "198.18.7.1/24")))
	if !errors.Is(err, ErrUnsupportedCommand) || index <= newer {
		t.Errorf("write after the halt: got index %d, %v; want an index after %d and ErrUnsupportedCommand", index, err, newer)
	}
	for _, s := range stores {
		if got, _ := s.State(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s state changed after the halt: %+v", s.cfg.NodeID, got)
		}
		if err := s.raft.Snapshot().Error(); err == nil || !strings.Contains(err.Error(), "halted") {
			t.Errorf("%s snapshot while halted: got %v, want a refusal (the unapplied entries would be lost)", s.cfg.NodeID, err)
		}
	}
}
