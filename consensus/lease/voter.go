package lease

import "time"

// Assignments is the voter's view of its replicated state: the node a resource is
// assigned to and the epoch of that assignment (ok false: no such assignment).
type Assignments func(resource string) (node string, epoch uint64, ok bool)

// Voter is one voter's side of the protocol. Not safe for concurrent use.
type Voter struct {
	t          Timers
	quarantine time.Duration // confirm nothing before this time (restart)
	started    time.Duration
	nodes      map[string]*voterNode
	res        map[string]*voterRes
}

type voterNode struct {
	inc      uint64
	seq      uint64
	rev      uint64
	claims   []Claim
	heard    time.Duration // last renewal received
	everSeen bool
}

// voterRes is what the voter last confirmed for a resource.
type voterRes struct {
	holder string        // node it was last confirmed for
	at     time.Duration // when
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

// Handle processes a renewal received at now and returns the reply.
func (v *Voter) Handle(now time.Duration, r Renewal, assigned Assignments) Reply {
	rep := Reply{Node: r.Node, Seq: r.Seq, Rev: r.Rev}
	n := v.nodes[r.Node]
	if n == nil {
		n = &voterNode{}
		v.nodes[r.Node] = n
	}
	if n.everSeen && r.Inc != n.inc {
		// The node restarted: a new incarnation with its own sequence.
		n.everSeen, n.rev = false, 0
	}
	if n.everSeen && r.Seq <= n.seq {
		// A late duplicate or reordered datagram: answering it could confirm a set
		// the node no longer claims. Deny everything in it.
		rep.Denied = claimNames(r.Claims)
		if !r.Full {
			rep.NeedSet = true
		}
		return rep
	}
	n.inc, n.seq, n.everSeen, n.heard = r.Inc, r.Seq, true, now
	switch {
	case r.Full:
		v.replaceSet(n, r.Node, r.Claims)
		n.rev = r.Rev
	case r.Rev != n.rev:
		rep.NeedSet = true
		return rep
	}
	for _, c := range n.claims {
		ok, takeover := v.confirm(now, r.Node, c, assigned)
		switch {
		case !ok:
			rep.Denied = append(rep.Denied, c.Resource)
		case takeover:
			rep.Takeover = append(rep.Takeover, c.Resource)
		}
	}
	return rep
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
	if vr != nil && vr.holder != node && !vr.released && now-vr.at < v.t.Lease+v.t.Margin {
		return false, false // the previous holder's lease may still run
	}
	switch {
	case vr == nil:
		vr = &voterRes{}
		v.res[c.Resource] = vr
	case vr.holder != node:
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
	if vr == nil || vr.released || now-vr.at >= v.t.Lease+v.t.Margin {
		delete(v.res, resource)
	}
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
