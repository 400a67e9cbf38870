package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 10s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runAll runs fn(ctx) for each item in its own goroutine until the test ends and
// fails the test if any does not return promptly after cancellation.
func runAll(t *testing.T, fns ...func(context.Context) error) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(ctx); err != nil {
				t.Errorf("Run returned %v, want nil", err)
			}
		}()
	}
	stop := func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("Run goroutines still running 10s after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}

// newMemCluster starts n voters over raft's in-memory transport and stores,
// bootstrapped together. Ids are n1..nN; API addresses api-n1...
func newMemCluster(t *testing.T, n int) []*Store { return newMemClusterOf(t, n, n) }

func leaderOf(t *testing.T, stores []*Store) *Store {
	t.Helper()
	var leader *Store
	eventually(t, "a leader", func() bool {
		for _, s := range stores {
			if s.IsLeader() {
				leader = s
				return true
			}
		}
		return false
	})
	return leader
}

func mustApply(t *testing.T, s *Store, cmds ...Command) uint64 {
	t.Helper()
	var index uint64
	for _, c := range cmds {
		var err error
		index, err = s.Apply(context.Background(), c)
		if err != nil {
			t.Fatalf("Apply %s: %v", c.Op, err)
		}
	}
	return index
}

func TestMemClusterReplicatesAndSurvivesLeaderChange(t *testing.T) {
	stores := newMemCluster(t, 3)
	runAll(t, stores[0].Run, stores[1].Run, stores[2].Run)
	leader := leaderOf(t, stores)
	lid, _ := leader.Leader()
	// Run records the leader's own node; the others are written here as a join
	// handler would.
	eventually(t, "the leader's own node record", func() bool {
		st, _ := leader.State()
		return st.Nodes[lid].APIAddr == "api-"+lid
	})
	for _, s := range stores {
		if s != leader {
			mustApply(t, leader, PutNode(Node{ID: s.cfg.NodeID, APIAddr: s.cfg.APIAddr, Voter: true}))
		}
	}
	mustApply(t, leader, ApplyResources([]Resource{vip("web", "198.18.1.10/24"), vip("db", "2001:2::10/64")}))
	assignIndex := mustApply(t, leader, Assign(Assignment{Resource: "web", Node: "n1"}, Assignment{Resource: "db", Node: "n2"}))

	var follower *Store
	for _, s := range stores {
		if s != leader {
			follower = s
		}
		eventually(t, s.cfg.NodeID+" applying index "+fmt.Sprint(assignIndex), func() bool {
			_, applied := s.State()
			return applied >= assignIndex
		})
	}
	want, _ := leader.State()
	if got := want.Assignments["web"]; got.Epoch != assignIndex {
		t.Errorf("web epoch: got %d, want the assign entry's index %d", got.Epoch, assignIndex)
	}
	for _, s := range stores {
		if got, _ := s.State(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s state differs from the leader's:\n got %+v\nwant %+v", s.cfg.NodeID, got, want)
		}
	}

	// A follower refuses writes and names the leader.
	_, err := follower.Apply(context.Background(), PutResource(vip("x", "198.18.1.11/24")))
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), lid) {
		t.Errorf("Apply on follower: got %v, want ErrNotLeader naming %s", err, lid)
	}
	// Validation errors come back as the apply error, with the index.
	if _, err := leader.Apply(context.Background(), PutResource(vip("web2", "198.18.1.10/32"))); !errors.Is(err, ErrDuplicateAddress) {
		t.Errorf("duplicate address: got %v, want ErrDuplicateAddress", err)
	}

	changes := follower.Changes()
	// Crash the leader (no leadership transfer); the other two elect a new one
	// after an election timeout, with the state intact.
	if err := leader.raft.Shutdown().Error(); err != nil {
		t.Fatalf("shut the leader down: %v", err)
	}
	var rest []*Store
	for _, s := range stores {
		if s != leader {
			rest = append(rest, s)
		}
	}
	next := leaderOf(t, rest)
	if err := next.barrier(context.Background()); err != nil {
		t.Fatalf("barrier on new leader: %v", err)
	}
	got, _ := next.State()
	if !reflect.DeepEqual(got.Resources, want.Resources) || !reflect.DeepEqual(got.Assignments, want.Assignments) {
		t.Errorf("new leader's state differs:\n got %+v\nwant %+v", got, want)
	}
	index := mustApply(t, next, Assign(Assignment{Resource: "web", Node: "n3"}))
	if index <= assignIndex {
		t.Errorf("new assign index %d not after %d", index, assignIndex)
	}
	select {
	case <-changes:
	case <-time.After(5 * time.Second):
		t.Errorf("follower's Changes did not fire after the new leader applied")
	}
	eventually(t, "the survivors agreeing on web's new epoch", func() bool {
		for _, s := range rest {
			if st, _ := s.State(); st.Assignments["web"].Epoch != index {
				return false
			}
		}
		return true
	})
}

func TestStoreRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{NodeID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", APIAddr: "127.0.0.1:7001", Voter: true,
		Logger: testLogger(t)}
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if s.HasExistingState() {
		t.Fatal("fresh data dir reports existing state")
	}
	if err := s.Bootstrap(); err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	stop := runAll(t, s.Run)
	eventually(t, "the node's own record", func() bool {
		st, _ := s.State()
		return st.Nodes["n1"].RaftAddr == s.RaftAddr() && st.Nodes["n1"].APIAddr == "127.0.0.1:7001"
	})
	mustApply(t, s, PutResource(vip("web", "198.18.1.10/24")), Assign(Assignment{Resource: "web", Node: "n1"}))
	// Part of the state goes into a snapshot, the rest stays in the log tail.
	if err := s.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	mustApply(t, s, PutResource(vip("db", "2001:2::10/64")), SetDraining("n1", true))
	want, _ := s.State()
	addr := s.RaftAddr()
	stop()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	cfg.RaftAddr = addr
	s2, err := Open(cfg)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { s2.Close() })
	if !s2.HasExistingState() {
		t.Error("reopened store reports no existing state")
	}
	if err := s2.Bootstrap(); !errors.Is(err, ErrAlreadyBootstrapped) {
		t.Errorf("second Bootstrap: got %v, want ErrAlreadyBootstrapped", err)
	}
	if err := s2.WaitLeader(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.barrier(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := s2.State()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("state after restart:\n got %+v\nwant %+v", got, want)
	}
	servers, err := s2.Servers()
	if err != nil || len(servers) != 1 || servers[0] != (Server{ID: "n1", RaftAddr: addr, Voter: true}) {
		t.Errorf("Servers: got %+v, %v", servers, err)
	}

	// A second store on the same data dir fails instead of hanging.
	if _, err := Open(cfg); err == nil || !strings.Contains(err.Error(), "another clusterd") {
		t.Errorf("Open on a data dir in use: got %v, want an error naming another clusterd", err)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0"},
		{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "0.0.0.0:0"},
		{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "no-port"},
	} {
		cfg.Logger = testLogger(t)
		if s, err := Open(cfg); err == nil {
			s.Close()
			t.Errorf("Open(%+v) succeeded, want an error", cfg)
		}
	}
}

func TestNonVoterCannotBootstrap(t *testing.T) {
	s, err := Open(Config{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Bootstrap(); err == nil || !strings.Contains(err.Error(), "non-voter") {
		t.Errorf("Bootstrap on a non-voter: got %v", err)
	}
}

func TestStoreMembership(t *testing.T) {
	// Three in-memory nodes, but only n1 starts as a voter; n2 joins as a voter,
	// n3 as a non-voter, then n3 is removed.
	stores := newMemClusterOf(t, 3, 1)
	leader := stores[0]
	eventually(t, "n1 leading", leader.IsLeader)
	if err := leader.AddVoter("n2", string(stores[1].trans.LocalAddr())); err != nil {
		t.Fatalf("AddVoter: %v", err)
	}
	if err := leader.AddNonvoter("n3", string(stores[2].trans.LocalAddr())); err != nil {
		t.Fatalf("AddNonvoter: %v", err)
	}
	if err := stores[1].AddVoter("n9", "nowhere"); !errors.Is(err, ErrNotLeader) {
		t.Errorf("AddVoter on a follower: got %v, want ErrNotLeader", err)
	}
	servers, err := leader.Servers()
	want := []Server{{"n1", "mem-n1", true}, {"n2", "mem-n2", true}, {"n3", "mem-n3", false}}
	if err != nil || !reflect.DeepEqual(servers, want) {
		t.Errorf("Servers: got %+v, %v; want %+v", servers, err, want)
	}
	index := mustApply(t, leader, PutNode(Node{ID: "n1"}))
	eventually(t, "the non-voter applying", func() bool { _, applied := stores[2].State(); return applied >= index })
	if err := leader.RemoveServer("n3"); err != nil {
		t.Fatalf("RemoveServer: %v", err)
	}
	if servers, _ := leader.Servers(); len(servers) != 2 {
		t.Errorf("Servers after RemoveServer: %+v", servers)
	}
}

// newMemClusterOf starts n in-memory nodes of which only the first `voters` are in
// the bootstrap configuration.
func newMemClusterOf(t *testing.T, n, voters int) []*Store {
	t.Helper()
	trans := make([]*raft.InmemTransport, n)
	var conf raft.Configuration
	for i := range trans {
		addr, tr := raft.NewInmemTransport(raft.ServerAddress(fmt.Sprintf("mem-n%d", i+1)))
		trans[i] = tr
		if i < voters {
			conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(fmt.Sprintf("n%d", i+1)), Address: addr})
		}
	}
	for _, a := range trans {
		for _, b := range trans {
			a.Connect(b.LocalAddr(), b)
		}
	}
	stores := make([]*Store, n)
	for i := range stores {
		mem := raft.NewInmemStore()
		id := fmt.Sprintf("n%d", i+1)
		cfg := Config{NodeID: id, APIAddr: "api-" + id, Voter: i < voters, Logger: testLogger(t)}
		s, err := newStore(cfg, mem, mem, raft.NewInmemSnapshotStore(), trans[i])
		if err != nil {
			t.Fatalf("newStore %s: %v", id, err)
		}
		t.Cleanup(func() { s.Close() })
		if i < voters {
			if err := s.raft.BootstrapCluster(conf).Error(); err != nil {
				t.Fatalf("bootstrap %s: %v", id, err)
			}
		}
		stores[i] = s
	}
	return stores
}

func TestApplyOfThousandResourcesThroughRaft(t *testing.T) {
	stores := newMemCluster(t, 3)
	leader := leaderOf(t, stores)
	rs := make([]Resource, 1000)
	for i := range rs {
		rs[i] = Resource{Name: fmt.Sprintf("vip-%04d", i), Interface: "eth0",
			Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 16)}
	}
	start := time.Now()
	index := mustApply(t, leader, ApplyResources(rs))
	t.Logf("1,000 resources committed in one entry (index %d) in %v", index, time.Since(start))
	for _, s := range stores {
		eventually(t, s.cfg.NodeID+" having 1,000 resources", func() bool {
			st, _ := s.State()
			return len(st.Resources) == 1000
		})
	}
}
