package consensus

import (
	"cmp"
	"slices"
	"time"
)

// Input is everything placement looks at. Place and Rebalance only read it.
type Input struct {
	Nodes       map[string]Node
	Alive       map[string]bool // liveness by node id; a missing node is not alive
	Resources   map[string]Resource
	Assignments map[string]Assignment
	Now         time.Time // read only for failback windows (UTC)
}

// Reason says why a resource moves.
type Reason string

// Reasons for moves.
const (
	ReasonNew        Reason = "new"         // online and unassigned
	ReasonFailover   Reason = "failover"    // its node is not alive or no longer a member
	ReasonDraining   Reason = "draining"    // its node is draining
	ReasonNotAllowed Reason = "not-allowed" // its node is not among its (group's) possible owners
	ReasonGroup      Reason = "group"       // joins the rest of its group
	ReasonFailback   Reason = "failback"    // back to a more preferred node, as its policy asks
	ReasonOffline    Reason = "offline"     // desired state offline
	ReasonRebalance  Reason = "rebalance"   // evens out load (Rebalance only)
)

// String returns the reason as logged.
func (r Reason) String() string { return string(r) }

// Move is one change to commit: Resource goes From one node To another; From ""
// places an unassigned resource, To "" unassigns it (no eligible node, or offline).
type Move struct {
	Resource string `json:"resource"`
	From     string `json:"from"`
	To       string `json:"to"`
	Reason   Reason `json:"reason"`
}

// Place returns the assignments to change, sorted by resource, so that:
//   - possible owners are hard and preferred owners (ordered) are soft;
//   - a resource on an alive, non-draining, allowed node stays there (an operator's
//     move sticks), unless its failback policy returns it to a more preferred node
//     ("immediate", or "window:HH:MM-HH:MM" while Now is inside the UTC window) and
//     the assignment is not Manual;
//   - new and failed-over resources go to their most preferred eligible node, else
//     to the least-loaded eligible node (ties: lowest node id);
//   - a group's resources are placed as one unit on one node;
//   - draining nodes get nothing and lose what they hold; offline resources are
//     unassigned; a resource with no eligible node is unassigned;
//   - every resource has at most one node.
//
// Group-wide settings (preferred owners, failback) come from the group's first
// resource by name that sets them; a group may run only where all its resources may.
func Place(in Input) []Move {
	p := newPlanner(in)
	p.place()
	return p.moves(nil)
}

// Rebalance returns Place's moves plus the fewest extra moves (ReasonRebalance) that
// even out the number of resources per eligible node, moving groups whole and
// respecting possible owners. It is for an operator's `clusterd rebalance`; the
// placement loop never calls it.
func Rebalance(in Input) []Move {
	p := newPlanner(in)
	p.place()
	placed := make(map[string]Reason)
	for _, m := range p.moves(nil) {
		placed[m.Resource] = m.Reason
	}
	p.rebalance()
	return p.moves(placed)
}

// unit is what placement moves: one ungrouped resource or a whole group.
type unit struct {
	key      string   // resource name, or "group:" + group name
	members  []string // resource names, sorted
	allowed  []bool   // by node index; nil = every node
	rank     []int    // preference rank by node index (0 best); len(nodes) = not preferred
	fallback failback
	manual   bool   // the holder was chosen by an operator
	target   int    // node index, or -1 for none
	holder   int    // node index it was on before this plan, or -1
	reason   Reason // why it moves off holder, if it does
}

type planner struct {
	in    Input
	ids   []string       // node ids, sorted
	index map[string]int // node id -> index in ids
	elig  []bool         // alive and not draining, by node index
	load  []int          // resources per node under the plan
	units []*unit
}

func newPlanner(in Input) *planner {
	p := &planner{in: in, index: make(map[string]int, len(in.Nodes))}
	for id := range in.Nodes {
		p.ids = append(p.ids, id)
	}
	slices.Sort(p.ids)
	p.elig = make([]bool, len(p.ids))
	p.load = make([]int, len(p.ids))
	for i, id := range p.ids {
		p.index[id] = i
		p.elig[i] = in.Alive[id] && !in.Nodes[id].Draining
	}
	p.buildUnits()
	return p
}

// buildUnits groups the online resources into units, in name order.
func (p *planner) buildUnits() {
	names := make([]string, 0, len(p.in.Resources))
	for name, r := range p.in.Resources {
		if !r.Offline {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	groups := make(map[string]*unit)
	for _, name := range names {
		r := p.in.Resources[name]
		u := groups[r.Group]
		if u == nil || r.Group == "" {
			u = &unit{key: name, target: -1, holder: -1}
			if r.Group != "" {
				u.key = "group:" + r.Group
				groups[r.Group] = u
			}
			p.units = append(p.units, u)
		}
		u.members = append(u.members, name)
		p.addSettings(u, r)
	}
}

// addSettings folds one member's constraints into its unit.
func (p *planner) addSettings(u *unit, r Resource) {
	if len(r.PossibleOwners) > 0 {
		allow := make([]bool, len(p.ids))
		for _, id := range r.PossibleOwners {
			if i, ok := p.index[id]; ok && (u.allowed == nil || u.allowed[i]) {
				allow[i] = true
			}
		}
		u.allowed = allow
	}
	if u.rank == nil && len(r.PreferredOwners) > 0 {
		u.rank = make([]int, len(p.ids))
		for i := range u.rank {
			u.rank[i] = len(p.ids)
		}
		for n, id := range r.PreferredOwners {
			if i, ok := p.index[id]; ok && u.rank[i] == len(p.ids) {
				u.rank[i] = n
			}
		}
	}
	if u.fallback == (failback{}) && r.Failback != "" {
		u.fallback, _ = parseFailback(r.Failback) // invalid policies act as "never"
	}
}

func (p *planner) rankOf(u *unit, i int) int {
	if u.rank == nil {
		return len(p.ids)
	}
	return u.rank[i]
}

// eligible reports whether node i may hold u.
func (p *planner) eligible(u *unit, i int) bool {
	return i >= 0 && p.elig[i] && (u.allowed == nil || u.allowed[i])
}

// whyLeave says why u cannot stay on node id, or "" if it may.
func (p *planner) whyLeave(u *unit, id string) Reason {
	i, ok := p.index[id]
	switch {
	case !ok || !p.in.Alive[id]:
		return ReasonFailover
	case p.in.Nodes[id].Draining:
		return ReasonDraining
	case u.allowed != nil && !u.allowed[i]:
		return ReasonNotAllowed
	}
	return ""
}

// place decides every unit's target: units that stay (or fail back) first, so the
// load they carry steers where the others go.
func (p *planner) place() {
	var homeless []*unit
	minute := p.in.Now.UTC().Hour()*60 + p.in.Now.UTC().Minute()
	for _, u := range p.units {
		p.findHolder(u)
		if u.holder < 0 || !p.eligible(u, u.holder) {
			homeless = append(homeless, u)
			continue
		}
		u.target = u.holder
		if !u.manual && u.fallback.open(minute) {
			if best := p.mostPreferred(u); best >= 0 && p.rankOf(u, best) < p.rankOf(u, u.holder) {
				u.target, u.reason = best, ReasonFailback
			}
		}
		p.load[u.target] += len(u.members)
	}
	// Biggest units first, so groups find room before singles fill the gaps.
	slices.SortStableFunc(homeless, func(a, b *unit) int { return cmp.Compare(len(b.members), len(a.members)) })
	for _, u := range homeless {
		u.target = p.mostPreferred(u)
		if u.target < 0 {
			u.target = p.leastLoaded(u, -1)
		}
		if u.target >= 0 {
			p.load[u.target] += len(u.members)
		}
	}
}

// findHolder sets u.holder to the eligible node holding most of its members (ties:
// better preference, then lower index), or else to the node holding most members,
// with u.reason saying why that node will not do; -1 if no member is assigned.
func (p *planner) findHolder(u *unit) {
	if len(u.members) == 1 { // the common case, without the counting
		a, ok := p.in.Assignments[u.members[0]]
		switch {
		case !ok || a.Node == "":
			u.reason = ReasonNew
		case p.whyLeave(u, a.Node) == "":
			u.holder, u.manual = p.index[a.Node], a.Manual
		default:
			if i, ok := p.index[a.Node]; ok {
				u.holder = i
			}
			u.reason = p.whyLeave(u, a.Node)
		}
		return
	}
	count := make(map[string]int, 1)
	for _, m := range u.members {
		if a, ok := p.in.Assignments[m]; ok && a.Node != "" {
			count[a.Node]++
		}
	}
	var best, bestAny string
	better := func(id, than string) bool {
		if than == "" || count[id] != count[than] {
			return than == "" || count[id] > count[than]
		}
		i, iok := p.index[id]
		j, jok := p.index[than]
		if iok && jok && p.rankOf(u, i) != p.rankOf(u, j) {
			return p.rankOf(u, i) < p.rankOf(u, j)
		}
		return id < than
	}
	for id := range count {
		if better(id, bestAny) {
			bestAny = id
		}
		if p.whyLeave(u, id) == "" && better(id, best) {
			best = id
		}
	}
	switch {
	case best != "":
		u.holder = p.index[best]
	case bestAny != "":
		if i, ok := p.index[bestAny]; ok { // not ok: the node is no longer a member
			u.holder = i
		}
		u.reason = p.whyLeave(u, bestAny)
	default:
		u.reason = ReasonNew
	}
	for _, m := range u.members {
		if a := p.in.Assignments[m]; a.Node == best && a.Node != "" && a.Manual {
			u.manual = true
		}
	}
}

// mostPreferred returns the eligible node with the best preference rank, or -1.
func (p *planner) mostPreferred(u *unit) int {
	best := -1
	for i := range p.ids {
		if p.eligible(u, i) && p.rankOf(u, i) < len(p.ids) && (best < 0 || p.rankOf(u, i) < p.rankOf(u, best)) {
			best = i
		}
	}
	return best
}

// leastLoaded returns the eligible node other than skip with the lowest load
// (ties: lowest index), or -1.
func (p *planner) leastLoaded(u *unit, skip int) int {
	best := -1
	for i := range p.ids {
		if i != skip && p.eligible(u, i) && (best < 0 || p.load[i] < p.load[best]) {
			best = i
		}
	}
	return best
}

// moves lists every member whose node changes under the plan, with the reason;
// reasons in override (from an earlier plan) win.
func (p *planner) moves(override map[string]Reason) []Move {
	var out []Move
	for name, r := range p.in.Resources {
		if a, ok := p.in.Assignments[name]; ok && r.Offline {
			out = append(out, Move{Resource: name, From: a.Node, Reason: ReasonOffline})
		}
	}
	for _, u := range p.units {
		to := ""
		if u.target >= 0 {
			to = p.ids[u.target]
		}
		for _, m := range u.members {
			from := p.in.Assignments[m].Node
			if from == to {
				continue
			}
			out = append(out, Move{Resource: m, From: from, To: to, Reason: p.memberReason(u, from, override[m])})
		}
	}
	slices.SortFunc(out, func(a, b Move) int { return cmp.Compare(a.Resource, b.Resource) })
	return out
}

func (p *planner) memberReason(u *unit, from string, override Reason) Reason {
	if override != "" {
		return override
	}
	if from == "" {
		return ReasonNew
	}
	if why := p.whyLeave(u, from); why != "" {
		return why
	}
	if u.holder >= 0 && from == p.ids[u.holder] {
		if u.reason == ReasonFailback {
			return ReasonFailback
		}
		return ReasonRebalance
	}
	return ReasonGroup
}
