package resource

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// Plan is one batch of kernel changes, in the order they must be made.
type Plan struct {
	// Remove lists owned addresses that are no longer wanted, secondaries first (in
	// reverse of the kernel's order) and primaries last, so no removal deletes or
	// re-promotes another address that stays. With promote_secondaries set, removing a
	// primary that still has secondaries promotes one of them instead of deleting them.
	Remove []Address
	// Demote lists owned addresses that became the primary of a subnet in which the
	// node has an address of its own (which then sits as a secondary, e.g. after a
	// DHCP renewal): removed and added again so the node's address is the primary and
	// the source of the node's own traffic.
	Demote []Address
	// Add lists wanted addresses that are not on their interface yet.
	Add []Address
	// Foreign lists wanted addresses that are on the interface but were not added by
	// clusterd: they are left alone and reported, never adopted.
	Foreign []Address
}

// Empty reports whether the plan changes nothing.
func (p Plan) Empty() bool { return len(p.Remove)+len(p.Demote)+len(p.Add) == 0 }

func (p Plan) String() string {
	return fmt.Sprintf("remove %d, demote %d, add %d, foreign %d", len(p.Remove), len(p.Demote), len(p.Add), len(p.Foreign))
}

// MakePlan compares what the kernel holds with what is wanted. kernel maps each
// managed interface to its addresses in the kernel's own order; owned is what clusterd
// recorded as added; want is what this node should hold now. It is a pure function.
func MakePlan(kernel map[string][]KernelAddr, owned, want []Address) Plan {
	ownedSet := make(map[key]Address, len(owned))
	for _, a := range owned {
		ownedSet[a.key()] = a
	}
	wantSet := make(map[key]Address, len(want))
	for _, a := range want {
		wantSet[a.key()] = a
	}
	var p Plan
	present := make(map[key]netip.Prefix)
	for _, link := range sortedLinks(kernel) {
		addrs := kernel[link]
		var secondaries, primaries []Address
		for _, ka := range addrs {
			a := Address{Prefix: ka.Prefix, Interface: link}
			present[a.key()] = ka.Prefix
			w, wanted := wantSet[a.key()]
			_, isOwned := ownedSet[a.key()]
			switch {
			case !isOwned:
				if wanted {
					p.Foreign = append(p.Foreign, w)
				}
				continue
			case wanted && w.Prefix == ka.Prefix:
				if !ka.Secondary && hasForeignSecondary(addrs, ka.Prefix, ownedSet, link) {
					p.Demote = append(p.Demote, a)
				}
				continue
			}
			// Owned and either unwanted or wanted with another prefix length: remove
			// (a changed prefix length is added again below).
			if ka.Secondary {
				secondaries = append(secondaries, a)
			} else {
				primaries = append(primaries, a)
			}
		}
		p.Remove = append(p.Remove, reversed(secondaries)...)
		p.Remove = append(p.Remove, reversed(primaries)...)
	}
	for _, a := range want {
		if pfx, ok := present[a.key()]; ok {
			_, isOwned := ownedSet[a.key()]
			if !isOwned || pfx == a.Prefix {
				continue
			}
		}
		p.Add = append(p.Add, a)
	}
	sortAddresses(p.Add)
	return p
}

// hasForeignSecondary reports whether a non-owned address of p's subnet sits on the
// link as a secondary.
func hasForeignSecondary(addrs []KernelAddr, p netip.Prefix, owned map[key]Address, link string) bool {
	for _, ka := range addrs {
		if !ka.Secondary || subnet(ka.Prefix) != subnet(p) {
			continue
		}
		if _, ok := owned[key{ka.Prefix.Addr(), link}]; !ok {
			return true
		}
	}
	return false
}

func reversed(as []Address) []Address {
	out := make([]Address, len(as))
	for i, a := range as {
		out[len(as)-1-i] = a
	}
	return out
}

func sortedLinks(m map[string][]KernelAddr) []string {
	return slices.Sorted(maps.Keys(m))
}
