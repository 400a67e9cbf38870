package lease

import (
	"slices"
	"time"
)

// Holder is one node's side of the protocol: it builds renewals and, from the
// voters' replies, computes until when it may hold each resource. Not safe for
// concurrent use.
type Holder struct {
	t      Timers
	node   string
	inc    uint64
	seq    uint64
	voters []string

	claims []Claim
	rev    uint64
	sets   map[uint64]map[string]uint64 // recent claim sets by rev: resource → epoch
	revs   []uint64                     // order of sets, oldest first

	sent    map[uint64]time.Duration // seq → send time, recent rounds only
	acked   map[string]uint64        // voter → rev it has
	replies map[string]holderReply   // voter → latest reply
}

type holderReply struct {
	seq      uint64
	sentAt   time.Duration
	rev      uint64
	denied   map[string]bool
	takeover map[string]bool
}

// keepRounds bounds the memory of sent rounds and claim sets: a reply older than
// that many rounds is older than any lease anyway (Lease/Renew is ~6).
const keepRounds = 64

// NewHolder returns the holder side for node; inc identifies this process start.
func NewHolder(t Timers, node string, inc uint64) *Holder {
	return &Holder{t: t, node: node, inc: inc, sets: map[uint64]map[string]uint64{},
		sent: map[uint64]time.Duration{}, acked: map[string]uint64{}, replies: map[string]holderReply{}}
}

// SetVoters sets the raft voters to renew with.
func (h *Holder) SetVoters(ids []string) {
	if slices.Equal(ids, h.voters) {
		return
	}
	h.voters = slices.Clone(ids)
	for v := range h.replies {
		if !slices.Contains(ids, v) {
			delete(h.replies, v)
			delete(h.acked, v)
		}
	}
}

// Voters returns the voters renewals go to.
func (h *Holder) Voters() []string { return h.voters }

// SetClaims sets what this node holds or is assigned. It reports whether the set
// changed (then renew at once).
func (h *Holder) SetClaims(cs []Claim) bool {
	rev := Rev(cs)
	if rev == h.rev {
		return false
	}
	h.claims, h.rev = slices.Clone(cs), rev
	set := make(map[string]uint64, len(cs))
	for _, c := range cs {
		set[c.Resource] = c.Epoch
	}
	h.sets[rev] = set
	h.revs = append(h.revs, rev)
	if len(h.revs) > keepRounds {
		delete(h.sets, h.revs[0])
		h.revs = h.revs[1:]
	}
	return true
}

// Outgoing is a renewal for one voter.
type Outgoing struct {
	Voter   string
	Renewal Renewal
}

// Round builds this round's renewals, one per voter, sent at now.
func (h *Holder) Round(now time.Duration) []Outgoing {
	h.seq++
	h.sent[h.seq] = now
	delete(h.sent, h.seq-keepRounds)
	out := make([]Outgoing, 0, len(h.voters))
	for _, v := range h.voters {
		r := Renewal{Node: h.node, Inc: h.inc, Seq: h.seq, Rev: h.rev}
		if h.acked[v] != h.rev {
			r.Claims, r.Full = h.claims, true
		}
		out = append(out, Outgoing{Voter: v, Renewal: r})
	}
	return out
}

// Receive records a voter's reply.
func (h *Holder) Receive(r Reply) {
	sentAt, ok := h.sent[r.Seq]
	if !ok || r.Node != h.node || !slices.Contains(h.voters, r.Voter) {
		return // unknown or too old a round, or not ours
	}
	if r.NeedSet {
		h.acked[r.Voter] = 0
		return
	}
	if prev, ok := h.replies[r.Voter]; ok && prev.seq >= r.Seq {
		return
	}
	h.acked[r.Voter] = r.Rev
	denied := make(map[string]bool, len(r.Denied))
	for _, d := range r.Denied {
		denied[d] = true
	}
	var takeover map[string]bool
	if len(r.Takeover) > 0 {
		takeover = make(map[string]bool, len(r.Takeover))
		for _, d := range r.Takeover {
			takeover[d] = true
		}
	}
	h.replies[r.Voter] = holderReply{seq: r.Seq, sentAt: sentAt, rev: r.Rev, denied: denied, takeover: takeover}
}

// Deadline returns until when this node may hold the claim: the send time of the
// renewal behind the majority-th most recent confirmation of this resource at this
// epoch, plus Lease − Guard. Zero means no majority confirmed it. (Confirmations of
// an earlier assignment of the same resource never count: between the two, another
// node may have held it.)
func (h *Holder) Deadline(c Claim) time.Duration {
	resource := c.Resource
	need := Majority(len(h.voters))
	if len(h.voters) == 0 {
		return 0
	}
	var buf [16]time.Duration
	times := buf[:0]
	for _, v := range h.voters {
		rep, ok := h.replies[v]
		if e, in := h.sets[rep.rev][resource]; !ok || rep.denied[resource] || !in || e != c.Epoch {
			continue
		}
		times = append(times, rep.sentAt)
	}
	if len(times) < need {
		return 0
	}
	slices.Sort(times)
	return times[len(times)-need] + h.t.Lease - h.t.Guard
}

// MayHold reports whether the claim's lease runs at now.
func (h *Holder) MayHold(c Claim, now time.Duration) bool {
	return h.Deadline(c) > now
}

// Takeover reports whether any voter's latest reply confirmed the claim only because
// another node's lease timed out: that node may still answer for the address, so
// probe before adding it.
func (h *Holder) Takeover(c Claim) bool {
	for _, v := range h.voters {
		rep, ok := h.replies[v]
		if e, in := h.sets[rep.rev][c.Resource]; ok && in && e == c.Epoch && rep.takeover[c.Resource] {
			return true
		}
	}
	return false
}

// Reachable reports whether a majority of voters answered a renewal sent within the
// last Lease (confirming or not): whether this node can reach a quorum at all.
func (h *Holder) Reachable(now time.Duration) bool {
	if len(h.voters) == 0 {
		return false
	}
	n := 0
	for _, v := range h.voters {
		if rep, ok := h.replies[v]; ok && now-rep.sentAt < h.t.Lease {
			n++
		}
	}
	return n >= Majority(len(h.voters))
}

// Claims returns the current claim set (shared: do not modify).
func (h *Holder) Claims() []Claim { return h.claims }
