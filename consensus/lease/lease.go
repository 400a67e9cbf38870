// Package lease implements clusterd's majority-confirmed address leases (see
// consensus/DESIGN.md, "Leases"). Every node renews its claims — the resources it
// holds or is assigned, with the raft index (epoch) of each assignment — with every
// raft voter every Renew. A holder may keep an address only while a majority of voters
// confirmed it for renewals sent less than Lease−Guard ago. A voter confirms a claim
// only if its own replicated state assigns the resource to the claimant at that epoch,
// and never confirms a resource for a new holder until Lease+Margin after it last
// confirmed it for another node (unless that node said it let go). A voter that
// restarted confirms nothing for Lease+Margin. Any two majorities share a voter, so
// two nodes never hold the same address under valid leases, given a bound on
// clock-rate drift (Margin) and no wall clock: all times are CLOCK_BOOTTIME readings.
//
// The package is pure: Voter and Holder are state machines fed with times and
// messages; the daemon moves the messages (UDP, see codec.go) and reads the clock.
package lease

import (
	"hash/fnv"
	"slices"
	"strconv"
	"time"
)

// Timers are the lease protocol's durations.
type Timers struct {
	Renew  time.Duration // R: how often a node renews with every voter
	Lease  time.Duration // L: how long a confirmation counts, from the renewal's send time
	Margin time.Duration // M: added by voters before confirming a resource for a new holder
	Guard  time.Duration // G: holders give up this much before the lease ends
}

// Claim is one resource a node holds or wants to hold, at the epoch (raft index) of
// the assignment that gave it to the node.
type Claim struct {
	Resource string `json:"r"`
	Epoch    uint64 `json:"e"`
}

// Renewal is a node's message to a voter.
type Renewal struct {
	Node string `json:"node"`
	Inc  uint64 `json:"inc"` // incarnation: random per process start, so a restart resets Seq
	Seq  uint64 `json:"seq"` // increases with every renewal round of the incarnation
	Rev  uint64 `json:"rev"` // hash of the claim set
	// Claims is the full claim set, sent when it changed or the voter asked for it;
	// otherwise nil and the voter uses the set it has for Rev.
	Claims []Claim `json:"claims,omitempty"`
	Full   bool    `json:"full,omitempty"`
	// Part and Parts split a full set too large for one datagram: the voter answers
	// once it has every part of the set Rev (parts may come from different rounds).
	Part  int `json:"part,omitempty"`
	Parts int `json:"parts,omitempty"`
	// Lease is the holder's lease length (its profile): a voter waits the longer of
	// it and its own before confirming the holder's resources for another node, so
	// a node configured with longer leases than its voters (a profile mismatch)
	// cannot overlap a new holder. 0 (a holder of an older version): the voter's own.
	Lease time.Duration `json:"lease,omitempty"`
}

// Reply is a voter's answer to a renewal.
type Reply struct {
	Voter   string   `json:"voter"`
	Node    string   `json:"node"`
	Seq     uint64   `json:"seq"`
	Rev     uint64   `json:"rev"`
	NeedSet bool     `json:"need_set,omitempty"` // the voter does not know Rev: send the claims
	Denied  []string `json:"denied,omitempty"`   // claims of Rev not confirmed
	// Takeover lists claims confirmed because another node's confirmation timed
	// out, not because it released them: that node may still be alive (stalled,
	// partitioned) and its kernel still answer, so the new holder probes first.
	Takeover []string `json:"takeover,omitempty"`
	// DeniedAll and TakeoverAll stand for lists too long for one datagram: every
	// claim of Rev is denied, or to be probed. Both err on the safe side.
	DeniedAll   bool `json:"denied_all,omitempty"`
	TakeoverAll bool `json:"takeover_all,omitempty"`
}

// Rev hashes a claim set (order does not matter).
func Rev(cs []Claim) uint64 {
	s := slices.Clone(cs)
	slices.SortFunc(s, func(a, b Claim) int {
		if a.Resource < b.Resource {
			return -1
		}
		if a.Resource > b.Resource {
			return 1
		}
		return 0
	})
	h := fnv.New64a()
	for _, c := range s {
		h.Write([]byte(c.Resource))
		h.Write([]byte{0})
		h.Write([]byte(strconv.FormatUint(c.Epoch, 10)))
		h.Write([]byte{0})
	}
	return h.Sum64() | 1 // never 0: 0 means "no set"
}

// Majority is the number of votes that make a majority of n voters.
func Majority(n int) int { return n/2 + 1 }
