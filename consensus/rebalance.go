package consensus

import (
	"cmp"
	"slices"
)

// rebalance moves units from the most to the least loaded eligible nodes while a
// move strictly narrows the gap (load[from]-load[to] > size), which lowers the sum
// of squared loads each time and so ends. Units least attached to their node move
// first: not on a preferred node, then not manual, then biggest, then by key.
func (p *planner) rebalance() {
	on := make([][]*unit, len(p.ids))
	for _, u := range p.units {
		if u.target >= 0 {
			on[u.target] = append(on[u.target], u)
		}
	}
	for i, us := range on {
		slices.SortFunc(us, func(a, b *unit) int {
			return cmp.Or(
				cmp.Compare(p.rankOf(b, i), p.rankOf(a, i)),
				compareBool(a.manual, b.manual),
				cmp.Compare(len(b.members), len(a.members)),
				cmp.Compare(a.key, b.key))
		})
	}
	srcs := make([]int, len(p.ids))
	for {
		for i := range srcs {
			srcs[i] = i
		}
		slices.SortStableFunc(srcs, func(a, b int) int { return cmp.Compare(p.load[b], p.load[a]) })
		if !p.moveOne(on, srcs) {
			return
		}
	}
}

// moveOne makes the first improving move from the heaviest source it can, and
// reports whether it made one.
func (p *planner) moveOne(on [][]*unit, srcs []int) bool {
	for _, src := range srcs {
		for k, u := range on[src] {
			t := p.leastLoaded(u, src)
			if t < 0 || p.load[src]-p.load[t] <= len(u.members) {
				continue
			}
			on[src] = slices.Delete(on[src], k, k+1)
			on[t] = append(on[t], u)
			p.load[src] -= len(u.members)
			p.load[t] += len(u.members)
			u.target = t
			return true
		}
	}
	return false
}

// compareBool orders false before true.
func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}
