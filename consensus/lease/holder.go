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

	// ChunkBytes bounds the claims one renewal carries (estimated JSON size); a
	// larger set goes in parts. Small parts survive loss better: each is a few IP
	// fragments, and voters keep parts across rounds.
	ChunkBytes int

	claims []Claim
	rev    uint64
	chunks [][]Claim                    // claims split for sending
	sets   map[uint64]map[string]uint64 // recent claim sets by rev: resource → epoch
	revs   []uint64                     // order of sets, oldest first

	sent    map[uint64]time.Duration // seq → send time, recent rounds only
	acked   map[string]uint64        // voter → rev it has
	full    map[string]fullSend      // voter → the last full set sent to it
	replies map[string]holderReply   // voter → latest reply

	// uniform caches, until the next reply or change, the one deadline every claim of
	// the current set shares when every reply is for it and denies nothing.
	uniform      time.Duration
	uniformOK    bool
	uniformValid bool
}

// fullSend is when a voter was last sent the full set of a rev: a set in parts is
// tens of datagrams, so until the voter answers for it (or asks again after
// resendFull) the renewals in between carry only the rev. unanswered counts the
// sends since the voter last answered anything: a voter that stays silent (a dead
// node still in the raft configuration) gets the set ever less often.
type fullSend struct {
	rev        uint64
	at         time.Duration
	unanswered int
}

// maxResendBackoff caps the doubling of resendFull for a silent voter (2^4 = 16
// times: 0.8 s in the default profile).
const maxResendBackoff = 4

// resendAfter is how long after the last full send to voter v the parts go again.
func (h *Holder) resendAfter(f fullSend) time.Duration {
	return h.resendFull() << min(max(f.unanswered-1, 0), maxResendBackoff)
}

type holderReply struct {
	seq       uint64
	sentAt    time.Duration
	rev       uint64
	denied    map[string]bool
	deniedAll bool
	takeover  map[string]bool
	takeAll   bool
}

func (r holderReply) denies(resource string) bool { return r.deniedAll || r.denied[resource] }

func (r holderReply) takes(resource string) bool { return r.takeAll || r.takeover[resource] }

// keepRounds bounds the memory of sent rounds and claim sets: a reply older than
// that many rounds is older than any lease anyway (Lease/Renew is ~6).
const keepRounds = 64

// DefaultChunkBytes is the default bound on one renewal's claims: about 250 claims,
// six IP fragments on a 1,500-byte MTU.
const DefaultChunkBytes = 8000

// NewHolder returns the holder side for node; inc identifies this process start.
func NewHolder(t Timers, node string, inc uint64) *Holder {
	return &Holder{t: t, node: node, inc: inc, ChunkBytes: DefaultChunkBytes, sets: map[uint64]map[string]uint64{},
		sent: map[uint64]time.Duration{}, acked: map[string]uint64{}, full: map[string]fullSend{}, replies: map[string]holderReply{}}
}

// SetVoters sets the raft voters to renew with.
func (h *Holder) SetVoters(ids []string) {
	if slices.Equal(ids, h.voters) {
		return
	}
	h.voters = slices.Clone(ids)
	h.uniformValid = false
	for v := range h.replies {
		if !slices.Contains(ids, v) {
			delete(h.replies, v)
			delete(h.acked, v)
			delete(h.full, v)
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
	h.chunks = chunk(h.claims, h.ChunkBytes)
	h.uniformValid = false
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

// claimBytes estimates a claim's JSON size: {"r":"…","e":…}, with a 20-digit epoch.
func claimBytes(c Claim) int { return len(c.Resource) + 34 }

// chunk splits claims into parts of at most limit estimated bytes (at least one
// claim each).
func chunk(cs []Claim, limit int) [][]Claim {
	if limit <= 0 {
		limit = DefaultChunkBytes
	}
	var out [][]Claim
	start, size := 0, 0
	for i, c := range cs {
		if b := claimBytes(c); size+b > limit && i > start {
			out = append(out, cs[start:i])
			start, size = i, 0
		}
		size += claimBytes(c)
	}
	return append(out, cs[start:])
}

// Outgoing is a renewal for one voter.
type Outgoing struct {
	Voter   string
	Renewal Renewal
}

// resendFull is how long a holder waits for a voter to answer a claim set sent in
// parts before it sends the parts again (a voter keeps the parts it has).
func (h *Holder) resendFull() time.Duration { return max(h.t.Lease/3, 2*h.t.Renew) }

// Round builds this round's renewals sent at now: one per voter, or, to a voter that
// lacks the claim set, the set (one renewal per part when it is too large for one
// datagram; parts at most every resendFull while the voter has not answered).
func (h *Holder) Round(now time.Duration) []Outgoing {
	h.seq++
	h.sent[h.seq] = now
	delete(h.sent, h.seq-keepRounds)
	out := make([]Outgoing, 0, len(h.voters))
	for _, v := range h.voters {
		r := Renewal{Node: h.node, Inc: h.inc, Seq: h.seq, Rev: h.rev, Lease: h.t.Lease}
		f := h.full[v]
		switch {
		case h.acked[v] == h.rev:
			out = append(out, Outgoing{Voter: v, Renewal: r})
		case len(h.chunks) > 1 && f.rev == h.rev && now-f.at < h.resendAfter(f):
			out = append(out, Outgoing{Voter: v, Renewal: r}) // parts on their way
		case len(h.chunks) <= 1:
			r.Claims, r.Full = h.claims, true
			out = append(out, Outgoing{Voter: v, Renewal: r})
		default:
			h.full[v] = fullSend{rev: h.rev, at: now, unanswered: f.unanswered + 1}
			for i, part := range h.chunks {
				p := r
				p.Claims, p.Full, p.Part, p.Parts = part, true, i, len(h.chunks)
				out = append(out, Outgoing{Voter: v, Renewal: p})
			}
		}
	}
	return out
}

// Receive records a voter's reply.
func (h *Holder) Receive(r Reply) {
	sentAt, ok := h.sent[r.Seq]
	if !ok || r.Node != h.node || !slices.Contains(h.voters, r.Voter) {
		return // unknown or too old a round, or not ours
	}
	if f, ok := h.full[r.Voter]; ok && f.unanswered > 0 {
		f.unanswered = 0 // it is alive: back to resending every resendFull
		h.full[r.Voter] = f
	}
	if r.NeedSet {
		h.acked[r.Voter] = 0
		return
	}
	if prev, ok := h.replies[r.Voter]; ok && prev.seq >= r.Seq {
		return
	}
	h.acked[r.Voter] = r.Rev
	h.uniformValid = false
	rep := holderReply{seq: r.Seq, sentAt: sentAt, rev: r.Rev, deniedAll: r.DeniedAll, takeAll: r.TakeoverAll}
	if len(r.Denied) > 0 {
		rep.denied = make(map[string]bool, len(r.Denied))
		for _, d := range r.Denied {
			rep.denied[d] = true
		}
	}
	if len(r.Takeover) > 0 {
		rep.takeover = make(map[string]bool, len(r.Takeover))
		for _, d := range r.Takeover {
			rep.takeover[d] = true
		}
	}
	h.replies[r.Voter] = rep
}

// Uniform returns the deadline every claim of the current set shares, when the
// latest replies are all for the current set and deny nothing (the steady state);
// ok false means claims may differ: ask Deadline for each.
func (h *Holder) Uniform() (deadline time.Duration, ok bool) {
	if h.uniformValid {
		return h.uniform, h.uniformOK
	}
	h.uniformValid = true
	h.uniform, h.uniformOK = 0, false
	if len(h.voters) == 0 {
		return 0, false
	}
	var buf [16]time.Duration
	times := buf[:0]
	for _, v := range h.voters {
		rep, ok := h.replies[v]
		if !ok {
			continue
		}
		if rep.rev != h.rev || rep.deniedAll || len(rep.denied) > 0 {
			return 0, false
		}
		times = append(times, rep.sentAt)
	}
	h.uniformOK = true
	if need := Majority(len(h.voters)); len(times) >= need {
		slices.Sort(times)
		h.uniform = times[len(times)-need] + h.t.Lease - h.t.Guard
	}
	return h.uniform, true
}

// Deadline returns until when this node may hold the claim: the send time of the
// renewal behind the majority-th most recent confirmation of this resource at this
// epoch, plus Lease − Guard. Zero means no majority confirmed it. (Confirmations of
// an earlier assignment of the same resource never count: between the two, another
// node may have held it.)
func (h *Holder) Deadline(c Claim) time.Duration {
	if d, ok := h.Uniform(); ok {
		if e, in := h.sets[h.rev][c.Resource]; in && e == c.Epoch {
			return d
		}
		return 0
	}
	need := Majority(len(h.voters))
	if len(h.voters) == 0 {
		return 0
	}
	var buf [16]time.Duration
	times := buf[:0]
	for _, v := range h.voters {
		rep, ok := h.replies[v]
		if e, in := h.sets[rep.rev][c.Resource]; !ok || rep.denies(c.Resource) || !in || e != c.Epoch {
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
		if !ok || (rep.takeover == nil && !rep.takeAll) {
			continue
		}
		if e, in := h.sets[rep.rev][c.Resource]; in && e == c.Epoch && rep.takes(c.Resource) {
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
