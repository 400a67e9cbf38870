package consensus

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// fakeLiveness is a Liveness the test sets by hand; every node is alive until
// marked dead.
type fakeLiveness struct {
	mu   sync.Mutex // guards the fields below
	dead map[string]bool
	subs []chan struct{}
}

func (f *fakeLiveness) Alive(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.dead[id]
}

func (f *fakeLiveness) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	return ch
}

func (f *fakeLiveness) set(id string, alive bool) {
	f.mu.Lock()
	if f.dead == nil {
		f.dead = map[string]bool{}
	}
	f.dead[id] = !alive
	subs := f.subs
	f.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// perNode counts assignments by node and reports whether every online resource
// is assigned.
func perNode(st State) (map[string]int, bool) {
	m := map[string]int{}
	for _, a := range st.Assignments {
		m[a.Node]++
	}
	return m, len(st.Assignments) == len(st.Resources)
}

// placerCluster starts three in-memory nodes, each running its store and a
// placer over one fake liveness, and records all three nodes in the state.
func placerCluster(t *testing.T) ([]*Store, *fakeLiveness, *Store) {
	stores := newMemCluster(t, 3)
	live := &fakeLiveness{}
	var runs []func(context.Context) error
	for _, s := range stores {
		runs = append(runs, s.Run, NewPlacer(s, live, testLogger(t)).Run)
	}
	runAll(t, runs...)
	leader := leaderOf(t, stores)
	for _, s := range stores {
		mustApply(t, leader, PutNode(Node{ID: s.cfg.NodeID, APIAddr: s.cfg.APIAddr, Voter: true}))
	}
	return stores, live, leader
}

func TestPlacerFollowsStateAndLiveness(t *testing.T) {
	_, live, leader := placerCluster(t)
	rs := make([]Resource, 30)
	for i := range rs {
		rs[i] = Resource{Name: fmt.Sprintf("vip-%02d", i), Interface: "eth0",
			Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i + 10)}), 24)}
	}
	mustApply(t, leader, ApplyResources(rs))

	var st State
	eventually(t, "30 resources spread 10 per node", func() bool {
		st, _ = leader.State()
		n, all := perNode(st)
		return all && n["n1"] == 10 && n["n2"] == 10 && n["n3"] == 10
	})

	// n3 dies: its ten fail over, five to each survivor; nothing else moves.
	before := st.Assignments
	live.set("n3", false)
	eventually(t, "n3's resources failing over", func() bool {
		st, _ = leader.State()
		n, all := perNode(st)
		return all && n["n1"] == 15 && n["n2"] == 15
	})
	for r, a := range before {
		if a.Node != "n3" && st.Assignments[r] != a {
			t.Errorf("healthy %s moved: %+v -> %+v", r, a, st.Assignments[r])
		}
	}

	// An operator's move sticks: after it, add a resource (so placement runs
	// again) and check the moved one stayed.
	var moved string
	for r, a := range st.Assignments {
		if a.Node == "n1" {
			moved = r
			break
		}
	}
	mustApply(t, leader, Assign(Assignment{Resource: moved, Node: "n2", Manual: true}))
	mustApply(t, leader, PutResource(vip("late", "198.18.2.1/24")))
	eventually(t, "the late resource placed", func() bool {
		st, _ = leader.State()
		return st.Assignments["late"].Node != ""
	})
	if got := st.Assignments[moved].Node; got != "n2" {
		t.Errorf("operator-moved %s is on %s, want n2", moved, got)
	}
	if got := st.Assignments["late"].Node; got != "n1" {
		t.Errorf("late resource on %s, want the less loaded n1", got)
	}

	// Draining n2 empties it onto n1 (n3 is still dead).
	mustApply(t, leader, SetDraining("n2", true))
	eventually(t, "n2 drained", func() bool {
		st, _ = leader.State()
		n, all := perNode(st)
		return all && n["n1"] == 31
	})

	// An offline resource is unassigned.
	off := st.Resources["late"]
	off.Offline = true
	mustApply(t, leader, PutResource(off))
	eventually(t, "offline resource unassigned", func() bool {
		st, _ = leader.State()
		_, ok := st.Assignments["late"]
		return !ok
	})
}

func TestPlacerContinuesOnNewLeader(t *testing.T) {
	stores, live, leader := placerCluster(t)
	mustApply(t, leader, ApplyResources([]Resource{vip("a", "198.18.1.1/24"), vip("b", "198.18.1.2/24"), vip("c", "198.18.1.3/24")}))
	eventually(t, "one resource per node", func() bool {
		st, _ := leader.State()
		n, all := perNode(st)
		return all && n["n1"] == 1 && n["n2"] == 1 && n["n3"] == 1
	})

	// The leader crashes; liveness reports it dead; the new leader's placer moves
	// its resource.
	lid, _ := leader.Leader()
	if err := leader.raft.Shutdown().Error(); err != nil {
		t.Fatal(err)
	}
	var rest []*Store
	for _, s := range stores {
		if s != leader {
			rest = append(rest, s)
		}
	}
	live.set(lid, false)
	next := leaderOf(t, rest)
	eventually(t, "the crashed leader's resource on a survivor", func() bool {
		st, _ := next.State()
		n, all := perNode(st)
		return all && n[lid] == 0
	})
}
