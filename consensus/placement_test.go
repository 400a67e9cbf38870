package consensus

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// nodeSet returns member nodes by id; ids prefixed with "~" are draining.
func nodeSet(ids ...string) map[string]Node {
	m := make(map[string]Node, len(ids))
	for _, id := range ids {
		id, draining := strings.CutPrefix(id, "~")
		m[id] = Node{ID: id, Voter: true, Draining: draining}
	}
	return m
}

func aliveSet(ids ...string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}

func resourceSet(rs ...Resource) map[string]Resource {
	m := make(map[string]Resource, len(rs))
	for i, r := range rs {
		r.Address = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i + 1)}), 24)
		r.Interface = "eth0"
		m[r.Name] = r
	}
	return m
}

// names returns plain resources with the given names.
func names(ns ...string) []Resource {
	var rs []Resource
	for _, n := range ns {
		rs = append(rs, Resource{Name: n})
	}
	return rs
}

// assignSet parses "resource=node" pairs; a trailing "!" marks a manual assignment.
func assignSet(pairs ...string) map[string]Assignment {
	m := make(map[string]Assignment, len(pairs))
	for i, p := range pairs {
		r, n, _ := strings.Cut(p, "=")
		n, manual := strings.CutSuffix(n, "!")
		m[r] = Assignment{Resource: r, Node: n, Epoch: uint64(i + 1), Manual: manual}
	}
	return m
}

func mv(resource, from, to string, why Reason) Move {
	return Move{Resource: resource, From: from, To: to, Reason: why}
}

func at(hhmm string) time.Time {
	t, err := time.Parse("15:04", hhmm)
	if err != nil {
		panic(err)
	}
	return time.Date(2025, 6, 1, t.Hour(), t.Minute(), 0, 0, time.UTC)
}

func TestPlace(t *testing.T) {
	three := nodeSet("n1", "n2", "n3")
	all3 := aliveSet("n1", "n2", "n3")
	pref := func(name string, fb string, owners ...string) Resource {
		return Resource{Name: name, PreferredOwners: owners, Failback: fb}
	}
	poss := func(name string, owners ...string) Resource {
		return Resource{Name: name, PossibleOwners: owners}
	}
	grp := func(name, group string, possible ...string) Resource {
		return Resource{Name: name, Group: group, PossibleOwners: possible}
	}
	tests := []struct {
		name string
		in   Input
		want []Move
	}{
		{
			name: "new resources spread evenly in name order",
			in:   Input{Nodes: three, Alive: all3, Resources: resourceSet(names("a", "b", "c", "d", "e", "f")...)},
			want: []Move{mv("a", "", "n1", ReasonNew), mv("b", "", "n2", ReasonNew), mv("c", "", "n3", ReasonNew),
				mv("d", "", "n1", ReasonNew), mv("e", "", "n2", ReasonNew), mv("f", "", "n3", ReasonNew)},
		},
		{
			name: "new resource goes to the least loaded node",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(names("a", "b", "c", "d")...),
				Assignments: assignSet("a=n1", "b=n1", "c=n2")},
			want: []Move{mv("d", "", "n3", ReasonNew)},
		},
		{
			name: "preferred owner wins over load",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(Resource{Name: "a"}, Resource{Name: "b"},
				pref("c", "", "n1", "n2")), Assignments: assignSet("a=n1", "b=n1")},
			want: []Move{mv("c", "", "n1", ReasonNew)},
		},
		{
			name: "next preferred owner when the first is down",
			in: Input{Nodes: three, Alive: aliveSet("n2", "n3"), Resources: resourceSet(pref("a", "", "n1", "n3")),
				Assignments: assignSet("a=n1")},
			want: []Move{mv("a", "n1", "n3", ReasonFailover)},
		},
		{
			name: "least loaded when no preferred owner is eligible",
			in: Input{Nodes: nodeSet("n1", "n2", "~n3"), Alive: all3, Resources: resourceSet(Resource{Name: "a"},
				pref("b", "", "n3")), Assignments: assignSet("a=n1")},
			want: []Move{mv("b", "", "n2", ReasonNew)},
		},
		{
			name: "unknown preferred owners are ignored",
			in:   Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", "", "gone", "n2"))},
			want: []Move{mv("a", "", "n2", ReasonNew)},
		},
		{
			name: "possible owners are hard: nowhere to go unassigns",
			in: Input{Nodes: three, Alive: aliveSet("n1", "n3"), Resources: resourceSet(poss("a", "n2"), poss("b", "n2")),
				Assignments: assignSet("a=n2")},
			want: []Move{mv("a", "n2", "", ReasonFailover)},
		},
		{
			name: "holder no longer a possible owner",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(poss("a", "n2", "n3"), Resource{Name: "b"}),
				Assignments: assignSet("a=n1", "b=n2")},
			want: []Move{mv("a", "n1", "n3", ReasonNotAllowed)},
		},
		{
			name: "healthy resources never move by themselves",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", FailbackNever, "n1"), Resource{Name: "b"},
				Resource{Name: "c"}), Assignments: assignSet("a=n3", "b=n3", "c=n3")},
			want: nil,
		},
		{
			name: "a joining node takes new resources and nothing else",
			in: Input{Nodes: nodeSet("n1", "n2", "n4"), Alive: aliveSet("n1", "n2", "n4"),
				Resources: resourceSet(names("a", "b", "c", "d", "e")...), Assignments: assignSet("a=n1", "b=n1", "c=n2", "d=n2")},
			want: []Move{mv("e", "", "n4", ReasonNew)},
		},
		{
			name: "failover spreads over the survivors",
			in: Input{Nodes: three, Alive: aliveSet("n2", "n3"), Resources: resourceSet(names("a", "b", "c", "d", "e")...),
				Assignments: assignSet("a=n1", "b=n1", "c=n1", "d=n1", "e=n2")},
			want: []Move{mv("a", "n1", "n3", ReasonFailover), mv("b", "n1", "n2", ReasonFailover),
				mv("c", "n1", "n3", ReasonFailover), mv("d", "n1", "n2", ReasonFailover)},
		},
		{
			name: "holder removed from the cluster",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(names("a")...),
				Assignments: assignSet("a=gone")},
			want: []Move{mv("a", "gone", "n1", ReasonFailover)},
		},
		{
			name: "draining node loses what it holds and gets nothing new",
			in: Input{Nodes: nodeSet("~n1", "n2"), Alive: all3, Resources: resourceSet(names("a", "b")...),
				Assignments: assignSet("a=n1")},
			want: []Move{mv("a", "n1", "n2", ReasonDraining), mv("b", "", "n2", ReasonNew)},
		},
		{
			name: "draining the only node unassigns",
			in: Input{Nodes: nodeSet("~n1"), Alive: all3, Resources: resourceSet(names("a")...),
				Assignments: assignSet("a=n1")},
			want: []Move{mv("a", "n1", "", ReasonDraining)},
		},
		{
			name: "offline resources are unassigned and never placed",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(Resource{Name: "a", Offline: true},
				Resource{Name: "b", Offline: true}), Assignments: assignSet("a=n1")},
			want: []Move{mv("a", "n1", "", ReasonOffline)},
		},
		{
			name: "failback immediate returns to the preferred node",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", FailbackImmediate, "n1", "n2")),
				Assignments: assignSet("a=n3")},
			want: []Move{mv("a", "n3", "n1", ReasonFailback)},
		},
		{
			name: "failback immediate to a better but not best node",
			in: Input{Nodes: three, Alive: aliveSet("n2", "n3"), Resources: resourceSet(pref("a", FailbackImmediate, "n1", "n2")),
				Assignments: assignSet("a=n3")},
			want: []Move{mv("a", "n3", "n2", ReasonFailback)},
		},
		{
			name: "failback never is the default",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", "", "n1")),
				Assignments: assignSet("a=n3")},
			want: nil,
		},
		{
			name: "failback immediate leaves an operator's move alone",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", FailbackImmediate, "n1")),
				Assignments: assignSet("a=n3!")},
			want: nil,
		},
		{
			name: "failback window open",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", "window:02:00-04:00", "n1")),
				Assignments: assignSet("a=n3"), Now: at("03:59")},
			want: []Move{mv("a", "n3", "n1", ReasonFailback)},
		},
		{
			name: "failback window closed",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", "window:02:00-04:00", "n1")),
				Assignments: assignSet("a=n3"), Now: at("04:00")},
			want: nil,
		},
		{
			name: "failback window across midnight open",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", "window:22:00-02:00", "n1")),
				Assignments: assignSet("a=n3"), Now: at("01:30")},
			want: []Move{mv("a", "n3", "n1", ReasonFailback)},
		},
		{
			name: "failback window across midnight closed",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(pref("a", "window:22:00-02:00", "n1")),
				Assignments: assignSet("a=n3"), Now: at("12:00")},
			want: nil,
		},
		{
			name: "a group is placed as a unit before single resources",
			in: Input{Nodes: nodeSet("n1", "n2"), Alive: all3, Resources: resourceSet(Resource{Name: "a"},
				grp("x", "g"), grp("y", "g"), grp("z", "g"))},
			want: []Move{mv("a", "", "n2", ReasonNew), mv("x", "", "n1", ReasonNew), mv("y", "", "n1", ReasonNew),
				mv("z", "", "n1", ReasonNew)},
		},
		{
			name: "a new member joins its group",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(grp("x", "g"), grp("y", "g"), grp("z", "g")),
				Assignments: assignSet("x=n2", "y=n2")},
			want: []Move{mv("z", "", "n2", ReasonNew)},
		},
		{
			name: "a split group gathers where most of it is",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(grp("x", "g"), grp("y", "g"), grp("z", "g")),
				Assignments: assignSet("x=n1", "y=n2", "z=n2")},
			want: []Move{mv("x", "n1", "n2", ReasonGroup)},
		},
		{
			name: "a group runs only where all members may",
			in:   Input{Nodes: three, Alive: all3, Resources: resourceSet(grp("x", "g", "n1", "n2"), grp("y", "g", "n2", "n3"))},
			want: []Move{mv("x", "", "n2", ReasonNew), mv("y", "", "n2", ReasonNew)},
		},
		{
			name: "a group fails over whole",
			in: Input{Nodes: three, Alive: aliveSet("n2", "n3"), Resources: resourceSet(grp("x", "g"), grp("y", "g"),
				Resource{Name: "a"}), Assignments: assignSet("x=n1", "y=n1", "a=n2")},
			want: []Move{mv("x", "n1", "n3", ReasonFailover), mv("y", "n1", "n3", ReasonFailover)},
		},
		{
			name: "a group takes its preferences from its first member",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(
				Resource{Name: "x", Group: "g", PreferredOwners: []string{"n3"}},
				Resource{Name: "y", Group: "g", PreferredOwners: []string{"n1"}})},
			want: []Move{mv("x", "", "n3", ReasonNew), mv("y", "", "n3", ReasonNew)},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Place(tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Place:\n got %v\nwant %v", got, tc.want)
			}
			checkPlan(t, tc.in, got, false)
		})
	}
}

// checkPlan verifies the invariants every plan must keep: each resource moves at
// most once, lands only on an eligible allowed node, groups end on one node and
// (unless rebalancing) healthy non-failback resources stay.
func checkPlan(t *testing.T, in Input, moves []Move, rebalance bool) {
	t.Helper()
	final := make(map[string]string, len(in.Assignments))
	for r, a := range in.Assignments {
		final[r] = a.Node
	}
	seen := map[string]bool{}
	for _, m := range moves {
		if seen[m.Resource] {
			t.Fatalf("resource %s planned twice: %v", m.Resource, moves)
		}
		seen[m.Resource] = true
		if got := in.Assignments[m.Resource].Node; got != m.From {
			t.Errorf("move %v: From %q but assigned to %q", m, m.From, got)
		}
		final[m.Resource] = m.To
	}
	groupNode := map[string]string{}
	for name, r := range in.Resources {
		n, ok := final[name]
		if !ok || n == "" {
			continue
		}
		if r.Offline {
			t.Errorf("offline resource %s ends on %s", name, n)
		}
		if !in.Alive[n] || in.Nodes[n].Draining {
			t.Errorf("resource %s ends on ineligible node %s", name, n)
		}
		if len(r.PossibleOwners) > 0 && !slices.Contains(r.PossibleOwners, n) {
			t.Errorf("resource %s ends on %s, not among possible owners %v", name, n, r.PossibleOwners)
		}
		if r.Group != "" {
			if g, ok := groupNode[r.Group]; ok && g != n {
				t.Errorf("group %s split over %s and %s", r.Group, g, n)
			}
			groupNode[r.Group] = n
		}
		if m := seen[name]; m && !rebalance && r.Group == "" && r.Failback == "" {
			if from := in.Assignments[name].Node; from != "" && in.Alive[from] && !in.Nodes[from].Draining &&
				(len(r.PossibleOwners) == 0 || slices.Contains(r.PossibleOwners, from)) {
				t.Errorf("healthy resource %s moved from %s to %s", name, from, n)
			}
		}
	}
}

func TestPlaceRandomInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		in := randomInput(rng, 1+rng.IntN(6), rng.IntN(40))
		got := Place(in)
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkPlan(t, in, got, false) })
		again := Place(in)
		if !slices.Equal(got, again) {
			t.Fatalf("case %d: Place not deterministic:\n%v\n%v", i, got, again)
		}
		// Applying the plan and planning again must be a fixed point.
		next := Input{Nodes: in.Nodes, Alive: in.Alive, Resources: in.Resources, Assignments: applyMoves(in.Assignments, got), Now: in.Now}
		if more := Place(next); len(more) != 0 {
			t.Fatalf("case %d: second Place after applying %v wants more: %v", i, got, more)
		}
	}
}

func randomInput(rng *rand.Rand, nNodes, nRes int) Input {
	in := Input{Nodes: map[string]Node{}, Alive: map[string]bool{}, Resources: map[string]Resource{},
		Assignments: map[string]Assignment{}, Now: at(fmt.Sprintf("%02d:%02d", rng.IntN(24), rng.IntN(60)))}
	var ids []string
	for i := range nNodes {
		id := fmt.Sprintf("n%d", i+1)
		ids = append(ids, id)
		in.Nodes[id] = Node{ID: id, Draining: rng.IntN(6) == 0}
		in.Alive[id] = rng.IntN(4) != 0
	}
	some := func() []string {
		var out []string
		for _, id := range ids {
			if rng.IntN(3) == 0 {
				out = append(out, id)
			}
		}
		return out
	}
	policies := []string{"", FailbackNever, FailbackImmediate, "window:02:00-04:00", "window:22:00-06:00"}
	for i := range nRes {
		r := Resource{Name: fmt.Sprintf("r%02d", i), Offline: rng.IntN(10) == 0, Failback: policies[rng.IntN(len(policies))]}
		if rng.IntN(3) == 0 {
			r.PossibleOwners = some()
		}
		if rng.IntN(2) == 0 {
			r.PreferredOwners = some()
		}
		if rng.IntN(4) == 0 {
			r.Group = fmt.Sprintf("g%d", rng.IntN(3))
		}
		in.Resources[r.Name] = r
		if rng.IntN(2) == 0 {
			node := fmt.Sprintf("n%d", 1+rng.IntN(nNodes+1)) // sometimes a removed node
			in.Assignments[r.Name] = Assignment{Resource: r.Name, Node: node, Manual: rng.IntN(5) == 0}
		}
	}
	return in
}

func applyMoves(as map[string]Assignment, moves []Move) map[string]Assignment {
	out := make(map[string]Assignment, len(as))
	for k, v := range as {
		out[k] = v
	}
	for _, m := range moves {
		if m.To == "" {
			delete(out, m.Resource)
			continue
		}
		out[m.Resource] = Assignment{Resource: m.Resource, Node: m.To}
	}
	return out
}

func loads(as map[string]Assignment) map[string]int {
	m := map[string]int{}
	for _, a := range as {
		m[a.Node]++
	}
	return m
}

func TestRebalance(t *testing.T) {
	three := nodeSet("n1", "n2", "n3")
	all3 := aliveSet("n1", "n2", "n3")
	tests := []struct {
		name      string
		in        Input
		want      []Move
		wantLoads map[string]int
	}{
		{
			name: "all on one node spreads with the fewest moves",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(names("a", "b", "c", "d", "e", "f")...),
				Assignments: assignSet("a=n1", "b=n1", "c=n1", "d=n1", "e=n1", "f=n1")},
			want: []Move{mv("a", "n1", "n2", ReasonRebalance), mv("b", "n1", "n3", ReasonRebalance),
				mv("c", "n1", "n2", ReasonRebalance), mv("d", "n1", "n3", ReasonRebalance)},
			wantLoads: map[string]int{"n1": 2, "n2": 2, "n3": 2},
		},
		{
			name: "balanced stays put",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(names("a", "b", "c", "d")...),
				Assignments: assignSet("a=n1", "b=n2", "c=n3", "d=n1")},
			want: nil, wantLoads: map[string]int{"n1": 2, "n2": 1, "n3": 1},
		},
		{
			name: "resources off their preferred node move first",
			in: Input{Nodes: nodeSet("n1", "n2"), Alive: all3, Resources: resourceSet(
				Resource{Name: "a", PreferredOwners: []string{"n1"}}, Resource{Name: "b", PreferredOwners: []string{"n1"}},
				Resource{Name: "c", PreferredOwners: []string{"n2"}}, Resource{Name: "d", PreferredOwners: []string{"n1"}}),
				Assignments: assignSet("a=n1", "b=n1", "c=n1", "d=n1")},
			want:      []Move{mv("a", "n1", "n2", ReasonRebalance), mv("c", "n1", "n2", ReasonRebalance)},
			wantLoads: map[string]int{"n1": 2, "n2": 2},
		},
		{
			name: "groups move whole and possible owners hold",
			in: Input{Nodes: three, Alive: all3, Resources: resourceSet(
				Resource{Name: "a", PossibleOwners: []string{"n1"}}, Resource{Name: "b", PossibleOwners: []string{"n1"}},
				Resource{Name: "x", Group: "g"}, Resource{Name: "y", Group: "g"}, Resource{Name: "z"}),
				Assignments: assignSet("a=n1", "b=n1", "x=n1", "y=n1", "z=n1")},
			want: []Move{mv("x", "n1", "n2", ReasonRebalance), mv("y", "n1", "n2", ReasonRebalance),
				mv("z", "n1", "n3", ReasonRebalance)},
			wantLoads: map[string]int{"n1": 2, "n2": 2, "n3": 1},
		},
		{
			name: "failover moves come with the plan",
			in: Input{Nodes: three, Alive: aliveSet("n2", "n3"), Resources: resourceSet(names("a", "b", "c", "d")...),
				Assignments: assignSet("a=n1", "b=n2", "c=n2", "d=n2")},
			want:      []Move{mv("a", "n1", "n3", ReasonFailover), mv("b", "n2", "n3", ReasonRebalance)},
			wantLoads: map[string]int{"n2": 2, "n3": 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Rebalance(tc.in)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Rebalance:\n got %v\nwant %v", got, tc.want)
			}
			checkPlan(t, tc.in, got, true)
			gotLoads := loads(applyMoves(tc.in.Assignments, got))
			if fmt.Sprint(gotLoads) != fmt.Sprint(tc.wantLoads) {
				t.Errorf("loads after Rebalance: got %v, want %v", gotLoads, tc.wantLoads)
			}
		})
	}
}

func TestRebalanceRandomIsBalanced(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 100 {
		n := 2 + rng.IntN(6)
		in := Input{Nodes: map[string]Node{}, Alive: map[string]bool{}, Resources: map[string]Resource{}, Assignments: map[string]Assignment{}}
		for j := range n {
			id := fmt.Sprintf("n%d", j+1)
			in.Nodes[id], in.Alive[id] = Node{ID: id}, true
		}
		for j := range rng.IntN(200) {
			name := fmt.Sprintf("r%03d", j)
			in.Resources[name] = Resource{Name: name}
			in.Assignments[name] = Assignment{Resource: name, Node: fmt.Sprintf("n%d", 1+rng.IntN(1+rng.IntN(n)))}
		}
		got := Rebalance(in)
		checkPlan(t, in, got, true)
		l := loads(applyMoves(in.Assignments, got))
		lo, hi := len(in.Resources), 0
		for id := range in.Nodes {
			lo, hi = min(lo, l[id]), max(hi, l[id])
		}
		if hi-lo > 1 {
			t.Fatalf("case %d: loads after Rebalance %v differ by %d, want at most 1", i, l, hi-lo)
		}
		// Fewest moves for unconstrained singles: every excess resource above the
		// ceiling of the mean must move, and no more.
		ceil := (len(in.Resources) + n - 1) / n
		floor := len(in.Resources) / n
		need, spare := 0, 0
		for _, c := range loads(in.Assignments) {
			need += max(0, c-ceil)
			spare += max(0, c-floor)
		}
		if len(got) < need || len(got) > spare {
			t.Fatalf("case %d: %d moves, want between %d and %d", i, len(got), need, spare)
		}
	}
}

// bench10k is 10,000 resources over 7 nodes: n7 has just died, 10% are new, a
// few groups, possible and preferred owners on some.
func bench10k() Input {
	in := Input{Nodes: map[string]Node{}, Alive: map[string]bool{}, Resources: map[string]Resource{},
		Assignments: map[string]Assignment{}, Now: at("03:00")}
	for i := 1; i <= 7; i++ {
		id := fmt.Sprintf("n%d", i)
		in.Nodes[id], in.Alive[id] = Node{ID: id}, i != 7
	}
	for i := range 10000 {
		r := Resource{Name: fmt.Sprintf("vip-%05d", i), Interface: "eth0",
			Address: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 16)}
		switch i % 10 {
		case 1:
			r.PreferredOwners = []string{fmt.Sprintf("n%d", 1+i%7), fmt.Sprintf("n%d", 1+(i+1)%7)}
			r.Failback = "window:02:00-04:00"
		case 2:
			r.PossibleOwners = []string{"n1", "n2", "n7"}
		case 3:
			r.Group = fmt.Sprintf("g%d", i%50)
		}
		in.Resources[r.Name] = r
		if i%10 != 9 {
			in.Assignments[r.Name] = Assignment{Resource: r.Name, Node: fmt.Sprintf("n%d", 1+i%7)}
		}
	}
	return in
}

func BenchmarkPlace10k(b *testing.B) {
	in := bench10k()
	var moves []Move
	for b.Loop() {
		moves = Place(in)
	}
	b.ReportMetric(float64(len(moves)), "moves")
}

func BenchmarkRebalance10k(b *testing.B) {
	in := bench10k()
	for b.Loop() {
		Rebalance(in)
	}
}

func TestPlace10kInvariants(t *testing.T) {
	in := bench10k()
	start := time.Now()
	got := Place(in)
	t.Logf("Place over 10,000 resources and 7 nodes: %d moves in %v", len(got), time.Since(start))
	checkPlan(t, in, got, false)
}
