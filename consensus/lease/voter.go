package lease

import "time"

// Assignments is the voter's view of its replicated state: the node a resource is
// assigned to and the epoch of that assignment (ok false: no such assignment).
type Assignments func(resource string) (node string, epoch uint64, ok bool)

// Voter is one voter's side of the protocol. Not safe for concurrent use.
//
// A renewal costs O(1) in the steady state: once every claim of a node's set was
// confirmed with no takeover, the voter remembers that (the node's clean answer)
// and, while its assignments stay at the same generation, answers the next renewals
// from it, recording only the time. Nothing else can change the answer meanwhile:
// no other node can be confirmed for a resource assigned to this one, and time only
// moves the voter past its quarantine and past other holders' leases.
type Voter struct {
	t          Timers
	quarantine time.Duration // confirm nothing before this time (restart), or before
	// started + maxLease + Margin once a holder says its leases are longer
	maxLease time.Duration
	started  time.Duration
	nodes    map[string]*voterNode
	res      map[string]*voterRes
}

type voterNode struct {
	inc      uint64
	seq      uint64
	rev      uint64
	claims   []Claim
	heard    time.Duration // last renewal received
	everSeen bool
	lease    time.Duration // the longest lease the node said it holds (Renewal.Lease)

	// clean: at cleanAt, under assignments generation cleanGen, every claim of rev
	// was confirmed and none was a takeover. The claims' records (voterRes.at) are
	// not updated while it holds; lastAt reads cleanAt instead, and flush writes it
	// back before the answer is recomputed.
	clean    bool
	cleanAt  time.Duration
	cleanGen uint64

	asm *assembly // a claim set arriving in parts
}

// assembly collects the parts of a claim set too large for one datagram. Parts are
// kept across rounds: each is identified by the set's rev, so a part lost in one
// round is filled in by the next.
type assembly struct {
	inc, rev uint64
	parts    [][]Claim
	have     int
}

// voterRes is what the voter last confirmed for a resource.
type voterRes struct {
	holder string        // node it was last confirmed for
	at     time.Duration // when (see lastAt)
	// released: the holder's claim set stopped listing it, i.e. the holder reported
	// the address gone; another node may then be confirmed at once.
	released bool
	takeover bool          // holder got it by timing out another node
	since    time.Duration // when holder was first confirmed
}

// NewVoter returns a voter that started at now. It confirms nothing until
// now + Lease + Margin: it may have confirmed resources before a restart that it no
// longer remembers.
func NewVoter(t Timers, now time.Duration) *Voter {
	return &Voter{t: t, started: now, quarantine: now + t.Lease + t.Margin,
		nodes: make(map[string]*voterNode), res: make(map[string]*voterRes)}
}

// Handle processes a renewal received at now and returns the reply; gen identifies
// the voter's assignments (it must change whenever assigned could answer
// differently). It sends no reply (false) for a part of a claim set that is not
// complete yet.
func (v *Voter) Handle(now time.Duration, r Renewal, gen uint64, assigned Assignments) (Reply, bool) {
	rep := Reply{Node: r.Node, Seq: r.Seq, Rev: r.Rev}
	n := v.nodes[r.Node]
	if n == nil {
		n = &voterNode{}
		v.nodes[r.Node] = n
	}
	if n.everSeen && r.Inc != n.inc {
		// The node restarted: a new incarnation with its own sequence.
		v.flush(n, r.Node)
		n.everSeen, n.rev, n.asm = false, 0, nil
	}
	if n.everSeen && r.Seq <= n.seq {
		// A late duplicate or reordered datagram: answering it could confirm a set
		// the node no longer claims. Deny everything in it.
		rep.Denied = claimNames(r.Claims)
		if !r.Full {
			rep.NeedSet = true
		}
		return rep, true
	}
	if r.Full && r.Parts > 1 {
		claims, done := n.assemble(r)
		n.heard = now
		if !done {
			return Reply{}, false
		}
		r.Claims = claims
	}
	n.inc, n.seq, n.everSeen, n.heard = r.Inc, r.Seq, true, now
	n.lease = max(n.lease, r.Lease)
	if r.Lease > v.maxLease {
		v.maxLease = r.Lease
		v.quarantine = max(v.quarantine, v.started+r.Lease+v.t.Margin)
	}
	switch {
	case r.Full:
		v.flush(n, r.Node)
		v.replaceSet(n, r.Node, r.Claims)
		n.rev = r.Rev
	case r.Rev != n.rev:
		rep.NeedSet = true
		return rep, true
	}
	if n.clean && n.cleanGen == gen {
		n.cleanAt = now
		return rep, true
	}
	v.flush(n, r.Node)
	for _, c := range n.claims {
		ok, takeover := v.confirm(now, r.Node, c, assigned)
		switch {
		case !ok:
			rep.Denied = append(rep.Denied, c.Resource)
		case takeover:
			rep.Takeover = append(rep.Takeover, c.Resource)
		}
	}
	if len(rep.Denied) == 0 && len(rep.Takeover) == 0 {
		n.clean, n.cleanAt, n.cleanGen = true, now, gen
	}
	// Whole-set answers in one flag: while a node's set is new to the voter's state
	// (a mass assignment, a takeover of a failed node's addresses), every claim is
	// denied or taken over, and a list of thousands of names each round is most of
	// the protocol's cost.
	if len(rep.Denied) > 1 && len(rep.Denied) == len(n.claims) {
		rep.Denied, rep.DeniedAll = nil, true
	}
	if len(rep.Takeover) > 1 && len(rep.Takeover) == len(n.claims) {
		rep.Takeover, rep.TakeoverAll = nil, true
	}
	return rep, true
}

// assemble adds a part of a claim set and returns the whole set once every part is in.
func (n *voterNode) assemble(r Renewal) ([]Claim, bool) {
	if r.Part < 0 || r.Part >= r.Parts {
		return nil, false
	}
	a := n.asm
	if a == nil || a.inc != r.Inc || a.rev != r.Rev || len(a.parts) != r.Parts {
		a = &assembly{inc: r.Inc, rev: r.Rev, parts: make([][]Claim, r.Parts)}
		n.asm = a
	}
	if a.parts[r.Part] == nil {
		a.have++
	}
	a.parts[r.Part] = append([]Claim{}, r.Claims...)
	if a.have < r.Parts {
		return nil, false
	}
	var all []Claim
	for _, p := range a.parts {
		all = append(all, p...)
	}
	n.asm = nil
	return all, true
}

// flush ends a node's clean answer, writing its time back to the claims' records.
func (v *Voter) flush(n *voterNode, node string) {
	if !n.clean {
		return
	}
	for _, c := range n.claims {
		if vr := v.res[c.Resource]; vr != nil && vr.holder == node && vr.at < n.cleanAt {
			vr.at = n.cleanAt
		}
	}
	n.clean = false
}

// lastAt is when the voter last confirmed vr's resource for its holder. (A record
// with holder h that is not released is in h's claim set, so h's clean answer, if
// any, covers it.)
func (v *Voter) lastAt(vr *voterRes) time.Duration {
	if n := v.nodes[vr.holder]; n != nil && n.clean && n.cleanAt > vr.at && !vr.released {
		return n.cleanAt
	}
	return vr.at
}

// replaceSet installs a node's new claim set; resources it no longer claims and had
// confirmed are marked released (the node reports them gone from its kernel).
func (v *Voter) replaceSet(n *voterNode, node string, claims []Claim) {
	keep := make(map[string]bool, len(claims))
	for _, c := range claims {
		keep[c.Resource] = true
	}
	for _, c := range n.claims {
		if vr := v.res[c.Resource]; vr != nil && vr.holder == node && !keep[c.Resource] {
			vr.released = true
		}
	}
	n.claims = append(n.claims[:0:0], claims...)
}

// confirm decides one claim; takeover says it was confirmed only because another
// node's confirmation timed out. A takeover stays flagged until the new holder's
// first confirmation is a Lease old, so every reply of the first rounds says so.
func (v *Voter) confirm(now time.Duration, node string, c Claim, assigned Assignments) (ok, takeover bool) {
	if now < v.quarantine {
		return false, false
	}
	owner, epoch, ok := assigned(c.Resource)
	if !ok || owner != node || epoch != c.Epoch {
		return false, false // not (or no longer, or not yet in this voter's state) the node's
	}
	vr := v.res[c.Resource]
	if vr != nil && vr.holder != node && !vr.released && now-v.lastAt(vr) < v.wait(vr.holder) {
		return false, false // the previous holder's lease may still run
	}
	switch {
	case vr == nil:
		vr = &voterRes{}
		v.res[c.Resource] = vr
	case vr.holder != node:
		if prev := v.nodes[vr.holder]; prev != nil {
			v.flush(prev, vr.holder) // its clean answer no longer covers this resource
		}
		vr.takeover = !vr.released
		vr.since = now
	}
	vr.holder, vr.at, vr.released = node, now, false
	if vr.takeover && now-vr.since >= v.t.Lease {
		vr.takeover = false
	}
	return true, vr.takeover
}

// Forget drops a deleted resource's record (the daemon calls it when the resource
// is gone from the replicated state).
func (v *Voter) Forget(resource string, now time.Duration) {
	vr := v.res[resource]
	if vr == nil || vr.released || now-v.lastAt(vr) >= v.wait(vr.holder) {
		delete(v.res, resource)
	}
}

// wait is how long after its last confirmation for holder a resource may be
// confirmed for another node: the longer of this voter's lease and the one the
// holder said it holds, plus the margin.
func (v *Voter) wait(holder string) time.Duration {
	l := v.t.Lease
	if n := v.nodes[holder]; n != nil {
		l = max(l, n.lease)
	}
	return l + v.t.Margin
}

// Heard returns when the voter last received a renewal from node, and false if it
// never did since it started (then it returns the start time).
func (v *Voter) Heard(node string) (time.Duration, bool) {
	if n := v.nodes[node]; n != nil && n.everSeen {
		return n.heard, true
	}
	return v.started, false
}

func claimNames(cs []Claim) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Resource
	}
	return out
}
