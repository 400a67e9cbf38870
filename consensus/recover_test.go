package consensus

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// openBolt opens a real store (bolt on disk, TCP on 127.0.0.1) in dir.
func openBolt(t *testing.T, id, dir, addr string) *Store {
	t.Helper()
	s, err := Open(Config{NodeID: id, DataDir: dir, RaftAddr: addr, APIAddr: "api-" + id, Voter: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newBoltCluster starts three real voters n1..n3; n1 bootstraps and leads.
func newBoltCluster(t *testing.T) (stores []*Store, dirs []string) {
	t.Helper()
	for _, id := range []string{"n1", "n2", "n3"} {
		dir := t.TempDir()
		stores = append(stores, openBolt(t, id, dir, "127.0.0.1:0"))
		dirs = append(dirs, dir)
	}
	if err := stores[0].Bootstrap(); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	eventually(t, "n1 leading", stores[0].IsLeader)
	for _, s := range stores[1:] {
		if err := stores[0].AddVoter(s.cfg.NodeID, s.RaftAddr()); err != nil {
			t.Fatalf("AddVoter %s: %v", s.cfg.NodeID, err)
		}
	}
	return stores, dirs
}

func waitApplied(t *testing.T, index uint64, stores ...*Store) {
	t.Helper()
	for _, s := range stores {
		eventually(t, s.cfg.NodeID+" applying", func() bool {
			_, applied := s.State()
			return applied >= index
		})
	}
}

func TestRecoverLastSurvivorOfThree(t *testing.T) {
	stores, dirs := newBoltCluster(t)
	n1 := stores[0]
	mustApply(t, n1, PutNode(Node{ID: "n1", Voter: true}), PutNode(Node{ID: "n2", Voter: true}), PutNode(Node{ID: "n3", Voter: true}),
		ApplyResources(backupResources()))
	// Part of the state goes into a snapshot, the rest stays in the log tail:
	// recovery must replay both.
	if err := n1.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	index := mustApply(t, n1, Assign(Assignment{Resource: "web", Node: "n2"}, Assignment{Resource: "db", Node: "n1"}),
		SetMaintenance(true, "rack 2 lost"))
	waitApplied(t, index, stores...)
	want, _ := n1.State()
	addr := n1.RaftAddr()

	// n2 and n3 are lost for good; n1 alone cannot commit anything.
	for _, s := range stores[1:] {
		if err := s.Close(); err != nil {
			t.Fatalf("close %s: %v", s.cfg.NodeID, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, applyErr := n1.Apply(ctx, PutResource(vip("lost", "198.18.7.7/24")))
	if applyErr == nil {
		t.Fatal("n1 committed a write without a majority")
	}
	// Unless n1 had already stepped down, the write is in its log, uncommitted.
	proposed := !errors.Is(applyErr, ErrNotLeader)

	// With the agent still running, recovery refuses to touch the data dir.
	err := Recover(dirs[0], "n1", addr, testLogger(t))
	if err == nil || !strings.Contains(err.Error(), "stop the clusterd agent") {
		t.Errorf("Recover with the store open: got %v, want an error telling to stop the agent", err)
	}
	if err := n1.Close(); err != nil {
		t.Fatalf("close n1: %v", err)
	}
	if Recovered(dirs[0]) {
		t.Errorf("data dir marked recovered before Recover ran")
	}
	if err := Recover(dirs[0], "n1", addr, testLogger(t)); err != nil {
		t.Fatalf("Recover: %v", err)
	}
	if !Recovered(dirs[0]) {
		t.Errorf("Recover left no mark: an agent whose config says join would refuse to start")
	}

	again := openBolt(t, "n1", dirs[0], addr)
	eventually(t, "recovered n1 leading alone", again.IsLeader)
	servers, err := again.Servers()
	if wantServers := []Server{{ID: "n1", RaftAddr: addr, Voter: true}}; err != nil || !reflect.DeepEqual(servers, wantServers) {
		t.Errorf("Servers after recovery: got %+v, %v; want %+v", servers, err, wantServers)
	}
	if err := again.barrier(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A write n1 proposed but could not commit is in its log, and recovery
	// applies it: raft cannot tell uncommitted entries apart here (documented on
	// Recover).
	got, _ := again.State()
	if _, ok := got.Resources["lost"]; ok != proposed {
		t.Errorf("uncommitted write proposed %v (%v), in the recovered state %v", proposed, applyErr, ok)
	}
	delete(got.Resources, "lost")
	got.Revision = want.Revision
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state after recovery:\n got %+v\nwant %+v", got, want)
	}
	// The new one-voter cluster commits, and the lost nodes' records can go.
	mustApply(t, again, RemoveNode("n2"), RemoveNode("n3"), PutResource(vip("after", "198.18.7.8/24")))
	if got, _ := again.State(); got.Holder("web") != "" || got.Holder("db") != "n1" || len(got.Nodes) != 1 {
		t.Errorf("after removing the lost nodes: assignments %+v, nodes %+v", got.Assignments, got.Nodes)
	}
}

func TestRecoverRefusesWhileMajorityAlive(t *testing.T) {
	stores, dirs := newBoltCluster(t)
	n1 := stores[0]
	index := mustApply(t, n1, ApplyResources(backupResources()))
	waitApplied(t, index, stores...)
	addr := n1.RaftAddr()
	if err := n1.Close(); err != nil {
		t.Fatal(err)
	}
	err := Recover(dirs[0], "n1", addr, testLogger(t))
	if !errors.Is(err, ErrQuorumReachable) {
		t.Fatalf("Recover with n2 and n3 alive: got %v, want ErrQuorumReachable", err)
	}
	if Recovered(dirs[0]) {
		t.Errorf("a refused recovery marked the data dir recovered")
	}
	for _, s := range []string{"n2 at " + stores[1].RaftAddr(), "n3 at " + stores[2].RaftAddr(), "start the agent"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("refusal %q does not mention %q", err, s)
		}
	}
	// The refusal left the data dir alone: n1 rejoins its cluster as a voter.
	again := openBolt(t, "n1", dirs[0], addr)
	survivor := leaderOf(t, stores[1:])
	index = mustApply(t, survivor, PutResource(vip("later", "198.18.7.9/24")))
	waitApplied(t, index, again)
	servers, err := again.Servers()
	if err != nil || len(servers) != 3 {
		t.Errorf("Servers after a refused recovery: got %+v, %v; want the three voters", servers, err)
	}
}

func TestRecoverRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		dir, id, addr, wantIn string
	}{
		{dir, "n 1", "127.0.0.1:7000", "node id"},
		{dir, "n1", "127.0.0.1", "host:port"},
		{dir, "n1", "127.0.0.1:0", "host:port"},
		{dir, "n1", "127.0.0.1:7000", "no raft state"},
	} {
		if err := Recover(tc.dir, tc.id, tc.addr, testLogger(t)); err == nil || !strings.Contains(err.Error(), tc.wantIn) {
			t.Errorf("Recover(%q, %q, %q): got %v, want an error mentioning %q", tc.dir, tc.id, tc.addr, err, tc.wantIn)
		}
	}
}

func TestCheckLost(t *testing.T) {
	three := []Server{{ID: "n1", RaftAddr: "a1", Voter: true}, {ID: "n2", RaftAddr: "a2", Voter: true}, {ID: "n3", RaftAddr: "a3", Voter: true}}
	five := append(slicesClone(three), Server{ID: "n4", RaftAddr: "a4", Voter: true}, Server{ID: "n5", RaftAddr: "a5", Voter: true})
	tests := []struct {
		name      string
		voters    []Server
		self      string
		reachable []string
		refuse    bool
	}{
		{name: "three, both others gone", voters: three, self: "n1"},
		{name: "three, one other alive", voters: three, self: "n1", reachable: []string{"n2"}, refuse: true},
		{name: "three, both alive", voters: three, self: "n1", reachable: []string{"n2", "n3"}, refuse: true},
		{name: "five, one other alive", voters: five, self: "n1", reachable: []string{"n2"}},
		{name: "five, two others alive", voters: five, self: "n1", reachable: []string{"n2", "n5"}, refuse: true},
		{name: "not a voter, two of three alive", voters: three, self: "n9", reachable: []string{"n2", "n3"}, refuse: true},
		{name: "not a voter, one of three alive", voters: three, self: "n9", reachable: []string{"n2"}},
		{name: "lone voter", voters: three[:1], self: "n1"},
		{name: "two voters, other alive", voters: three[:2], self: "n1", reachable: []string{"n2"}, refuse: true},
		{name: "two voters, other gone", voters: three[:2], self: "n1"},
	}
	for _, tc := range tests {
		reachable := map[string]bool{}
		for _, id := range tc.reachable {
			reachable[id] = true
		}
		err := checkLost(tc.voters, tc.self, reachable)
		if got := errors.Is(err, ErrQuorumReachable); got != tc.refuse {
			t.Errorf("%s: got %v, want refusal %v", tc.name, err, tc.refuse)
		}
	}
}

func slicesClone(s []Server) []Server { return append([]Server(nil), s...) }
