package lease

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

const ms = time.Millisecond

var timers = Timers{Renew: 25 * ms, Lease: 150 * ms, Margin: 25 * ms, Guard: 10 * ms}

// world is a tiny cluster: voters with their own view of the assignment of "r".
type world struct {
	voters map[string]*Voter
	view   map[string]Claim  // voter → (owner in Resource field, epoch)
	gen    map[string]uint64 // voter → generation of its view
}

func newWorld(start time.Duration, ids ...string) *world {
	w := &world{voters: map[string]*Voter{}, view: map[string]Claim{}, gen: map[string]uint64{}}
	for _, id := range ids {
		w.voters[id] = NewVoter(timers, start)
	}
	return w
}

func (w *world) assign(voter, node string, epoch uint64) {
	w.view[voter] = Claim{node, epoch}
	w.gen[voter]++
}

// handle is Voter.Handle for tests that send whole sets: it fails on a missing reply.
func handle(t *testing.T, v *Voter, now time.Duration, r Renewal, gen uint64, a Assignments) Reply {
	t.Helper()
	rep, ok := v.Handle(now, r, gen, a)
	if !ok {
		t.Fatalf("no reply to %+v", r)
	}
	return rep
}

func (w *world) assigned(voter string) Assignments {
	return func(res string) (string, uint64, bool) {
		c, ok := w.view[voter]
		return c.Resource, c.Epoch, ok && c.Resource != ""
	}
}

// round sends h's renewals at now and delivers them (and the replies) at once.
func (w *world) round(h *Holder, now time.Duration) {
	for _, o := range h.Round(now) {
		rep, ok := w.voters[o.Voter].Handle(now, o.Renewal, w.gen[o.Voter], w.assigned(o.Voter))
		if !ok {
			continue // a part of a larger set
		}
		rep.Voter = o.Voter
		h.Receive(rep)
	}
}

func TestSteadyHolderKeepsLease(t *testing.T) {
	w := newWorld(0, "v1", "v2", "v3")
	for _, v := range []string{"v1", "v2", "v3"} {
		w.assign(v, "x", 5)
	}
	x := NewHolder(timers, "x", 1)
	x.SetVoters([]string{"v1", "v2", "v3"})
	c := Claim{"r", 5}
	x.SetClaims([]Claim{c})
	now := timers.Lease + timers.Margin // past the voters' start-up quarantine
	w.round(x, now)
	if got, want := x.Deadline(c), now+timers.Lease-timers.Guard; got != want {
		t.Fatalf("deadline after one confirmed round: got %v, want %v", got, want)
	}
	if x.MayHold(Claim{"r", 4}, now) {
		t.Fatalf("a confirmation of epoch 5 counted for epoch 4")
	}
}

func TestQuarantineAfterVoterStart(t *testing.T) {
	w := newWorld(100*ms, "v1", "v2", "v3")
	for _, v := range []string{"v1", "v2", "v3"} {
		w.assign(v, "x", 5)
	}
	x := NewHolder(timers, "x", 1)
	x.SetVoters([]string{"v1", "v2", "v3"})
	c := Claim{"r", 5}
	x.SetClaims([]Claim{c})
	w.round(x, 100*ms+timers.Lease+timers.Margin-ms)
	if x.Deadline(c) != 0 {
		t.Fatalf("voters confirmed during their restart quarantine")
	}
	w.round(x, 100*ms+timers.Lease+timers.Margin)
	if x.Deadline(c) == 0 {
		t.Fatalf("no confirmation after the quarantine")
	}
}

func TestMajority(t *testing.T) {
	tests := []struct {
		voters, agreeing int
		ok               bool
	}{{1, 1, true}, {3, 1, false}, {3, 2, true}, {5, 2, false}, {5, 3, true}, {4, 2, false}, {4, 3, true}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d of %d", tt.agreeing, tt.voters), func(t *testing.T) {
			var ids []string
			for i := 0; i < tt.voters; i++ {
				ids = append(ids, fmt.Sprintf("v%d", i))
			}
			w := newWorld(0, ids...)
			for i, id := range ids {
				if i < tt.agreeing {
					w.assign(id, "x", 7)
				} else {
					w.assign(id, "y", 6) // behind: still the old assignment
				}
			}
			x := NewHolder(timers, "x", 1)
			x.SetVoters(ids)
			x.SetClaims([]Claim{{"r", 7}})
			now := time.Second
			w.round(x, now)
			if got := x.MayHold(Claim{"r", 7}, now); got != tt.ok {
				t.Fatalf("MayHold with %d of %d voters agreeing: got %v, want %v", tt.agreeing, tt.voters, got, tt.ok)
			}
		})
	}
}

func TestTakeoverWaitsLeasePlusMargin(t *testing.T) {
	ids := []string{"v1", "v2", "v3"}
	w := newWorld(0, ids...)
	for _, v := range ids {
		w.assign(v, "x", 5)
	}
	x := NewHolder(timers, "x", 1)
	x.SetVoters(ids)
	x.SetClaims([]Claim{{"r", 5}})
	t0 := time.Second
	w.round(x, t0) // last confirmation x gets: x then dies
	for _, v := range ids {
		w.assign(v, "y", 9)
	}
	y := NewHolder(timers, "y", 1)
	y.SetVoters(ids)
	c := Claim{"r", 9}
	y.SetClaims([]Claim{c})
	for now := t0 + 10*ms; now < t0+timers.Lease+timers.Margin; now += 5 * ms {
		w.round(y, now)
		if y.MayHold(c, now) {
			t.Fatalf("y confirmed at %v, only %v after x's last confirmation (want ≥ L+M = %v)", now-t0, now-t0, timers.Lease+timers.Margin)
		}
	}
	now := t0 + timers.Lease + timers.Margin
	w.round(y, now)
	if !y.MayHold(c, now) {
		t.Fatalf("y not confirmed L+M after x's last confirmation")
	}
	if xd := x.Deadline(Claim{"r", 5}); xd > now {
		t.Fatalf("x's lease (%v) runs past y's takeover (%v)", xd, now)
	}
	if !y.Takeover(c) {
		t.Fatalf("y got r by timing out x's lease, but is not told to probe first")
	}
}

func TestReleaseAllowsImmediateTakeover(t *testing.T) {
	ids := []string{"v1", "v2", "v3"}
	w := newWorld(0, ids...)
	for _, v := range ids {
		w.assign(v, "x", 5)
	}
	x := NewHolder(timers, "x", 1)
	x.SetVoters(ids)
	x.SetClaims([]Claim{{"r", 5}})
	t0 := time.Second
	w.round(x, t0)
	for _, v := range ids {
		w.assign(v, "", 0) // graceful move: unassigned first
	}
	x.SetClaims(nil) // x removed the address, then says so
	w.round(x, t0+ms)
	for _, v := range ids {
		w.assign(v, "y", 11)
	}
	y := NewHolder(timers, "y", 1)
	y.SetVoters(ids)
	c := Claim{"r", 11}
	y.SetClaims([]Claim{c})
	w.round(y, t0+2*ms)
	if !y.MayHold(c, t0+2*ms) {
		t.Fatalf("after x released r, y was not confirmed at once")
	}
	if y.Takeover(c) {
		t.Fatalf("after x released r, y is told to probe")
	}
}

func TestStaleRenewalIsDenied(t *testing.T) {
	v := NewVoter(timers, 0)
	assigned := func(string) (string, uint64, bool) { return "x", 5, true }
	now := time.Second
	r := Renewal{Node: "x", Inc: 1, Seq: 2, Rev: Rev([]Claim{{"r", 5}}), Claims: []Claim{{"r", 5}}, Full: true}
	if rep := handle(t, v, now, r, 1, assigned); len(rep.Denied) != 0 {
		t.Fatalf("fresh renewal denied: %v", rep.Denied)
	}
	old := r
	old.Seq = 1
	if rep := handle(t, v, now, old, 1, assigned); len(rep.Denied) != 1 {
		t.Fatalf("reordered older renewal: got denied %v, want all denied", rep.Denied)
	}
	restarted := r
	restarted.Inc, restarted.Seq = 2, 1
	if rep := handle(t, v, now, restarted, 1, assigned); len(rep.Denied) != 0 {
		t.Fatalf("renewal of a restarted node (new incarnation) denied: %v", rep)
	}
}

func TestUnknownRevAsksForSet(t *testing.T) {
	v := NewVoter(timers, 0)
	rep := handle(t, v, time.Second, Renewal{Node: "x", Inc: 1, Seq: 1, Rev: 42}, 1, func(string) (string, uint64, bool) { return "", 0, false })
	if !rep.NeedSet {
		t.Fatalf("unknown rev without claims: got %+v, want NeedSet", rep)
	}
	h := NewHolder(timers, "x", 1)
	h.SetVoters([]string{"v1"})
	h.SetClaims([]Claim{{"r", 1}})
	first := h.Round(time.Second)
	if !first[0].Renewal.Full {
		t.Fatalf("first renewal to a voter carries no claims")
	}
	h.Receive(Reply{Voter: "v1", Node: "x", Seq: first[0].Renewal.Seq, Rev: h.rev})
	if second := h.Round(time.Second + ms); second[0].Renewal.Full {
		t.Fatalf("claims resent to a voter that has them")
	}
	h.Receive(Reply{Voter: "v1", Node: "x", Seq: 2, NeedSet: true})
	if third := h.Round(time.Second + 2*ms); !third[0].Renewal.Full {
		t.Fatalf("voter asked for the set, next renewal lacks it")
	}
}

// TestNeverTwoHolders simulates three voters, three nodes and four resources whose
// assignments move at random (the voters and nodes apply each move after their own
// random delay), with renewals and replies delayed at random and 20 % lost, and
// checks at every step that no two nodes may hold a resource at once. Half the seeds
// send every claim set in parts (one claim per datagram).
func TestNeverTwoHolders(t *testing.T) {
	for seed := uint64(1); seed <= 60; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { t.Parallel(); simulate(t, seed) })
	}
}

type msg struct {
	at  time.Duration
	to  string // voter id, or node id for replies
	ren *Renewal
	rep *Reply
}

// simLog is the replicated log of assignments, each applied by every party after
// its own lag.
type simLog struct {
	entries []simEntry
	lag     map[string]time.Duration
	applied map[string]int                 // party → entries applied
	state   map[string]map[string]simEntry // party → resource → its entry
}

type simEntry struct {
	at       time.Duration
	resource string
	owner    string
	epoch    uint64
}

// view returns party p's assignment of resource at now and p's generation (the
// number of entries it applied). Time only moves forward.
func (l *simLog) view(p, resource string, now time.Duration) (owner string, epoch, gen uint64) {
	st := l.state[p]
	if st == nil {
		st = map[string]simEntry{}
		l.state[p] = st
	}
	for l.applied[p] < len(l.entries) && l.entries[l.applied[p]].at+l.lag[p] <= now {
		e := l.entries[l.applied[p]]
		st[e.resource] = e
		l.applied[p]++
	}
	e := st[resource]
	return e.owner, e.epoch, uint64(l.applied[p])
}

func simulate(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	voters := []string{"v1", "v2", "v3"}
	nodes := []string{"x", "y", "z"}
	resources := []string{"r0", "r1", "r2", "r3"}
	vs := map[string]*Voter{}
	for _, v := range voters {
		vs[v] = NewVoter(timers, 0)
	}
	hs := map[string]*Holder{}
	for _, n := range nodes {
		hs[n] = NewHolder(timers, n, 1)
		hs[n].SetVoters(voters)
		if seed%2 == 0 {
			hs[n].ChunkBytes = 1
		}
	}
	log := &simLog{lag: map[string]time.Duration{}, applied: map[string]int{}, state: map[string]map[string]simEntry{}}
	for _, p := range append(append([]string{}, voters...), nodes...) {
		log.lag[p] = time.Duration(rng.IntN(80)) * ms
	}
	var queue []msg
	send := func(m msg) {
		if rng.IntN(100) < 20 {
			return
		}
		m.at += time.Duration(rng.IntN(60)) * ms
		queue = append(queue, m)
	}
	// Moves every 100 ms keep claim sets changing; every 700 ms lets nodes settle
	// into clean answers that a move then has to end safely.
	moveEvery := []time.Duration{100 * ms, 300 * ms, 700 * ms}[seed%3]
	epoch := uint64(1)
	end := 20 * time.Second
	held, assigned := 0, 0
	for now := time.Duration(0); now < end; now += ms {
		if now%moveEvery == 0 {
			epoch++
			owner := nodes[rng.IntN(len(nodes))]
			if rng.IntN(4) == 0 {
				owner = "" // unassigned for a while
			}
			log.entries = append(log.entries, simEntry{now, resources[rng.IntN(len(resources))], owner, epoch})
		}
		// Deliver due messages.
		rest := queue[:0]
		var due []msg
		for _, m := range queue {
			if m.at <= now {
				due = append(due, m)
			} else {
				rest = append(rest, m)
			}
		}
		queue = rest
		for _, m := range due {
			if m.ren == nil {
				hs[m.to].Receive(*m.rep)
				continue
			}
			v := m.to
			_, _, gen := log.view(v, "", now)
			rep, ok := vs[v].Handle(now, *m.ren, gen, func(res string) (string, uint64, bool) {
				o, e, _ := log.view(v, res, now)
				return o, e, o != ""
			})
			if ok {
				rep.Voter = v
				send(msg{at: now, to: m.ren.Node, rep: &rep})
			}
		}
		// Each node: claim what its view assigns to it; renew every R.
		holders := map[string]int{}
		for _, n := range nodes {
			var claims []Claim
			for _, r := range resources {
				if o, e, _ := log.view(n, r, now); o == n {
					claims = append(claims, Claim{r, e})
				}
			}
			changed := hs[n].SetClaims(claims)
			if changed || now%timers.Renew == 0 {
				for _, out := range hs[n].Round(now) {
					ren := out.Renewal
					send(msg{at: now, to: out.Voter, ren: &ren})
				}
			}
			for _, c := range claims {
				assigned++
				if hs[n].MayHold(c, now) {
					holders[c.Resource]++
					held++
				}
			}
		}
		for r, k := range holders {
			if k > 1 {
				t.Fatalf("seed %d: %d nodes hold %s at %v", seed, k, r, now)
			}
		}
	}
	// Not vacuous: with 20 % loss and delays a resource is still held much of the
	// time a node has it assigned.
	if frac := float64(held) / float64(assigned); frac < 0.3 {
		t.Fatalf("seed %d: resources were held only %.0f%% of the time they were assigned", seed, 100*frac)
	}
}

// A clean answer (no per-claim work) still counts as a confirmation: a voter that
// answered x from its cache for many rounds must not confirm y before Lease+Margin
// after the last of them.
func TestCleanAnswerHoldsOffTakeover(t *testing.T) {
	w := newWorld(0, "v1", "v2", "v3")
	for _, v := range []string{"v1", "v2", "v3"} {
		w.assign(v, "x", 5)
	}
	x := NewHolder(timers, "x", 1)
	x.SetVoters([]string{"v1", "v2", "v3"})
	x.SetClaims([]Claim{{"r", 5}, {"s", 5}})
	start := timers.Lease + timers.Margin
	last := start
	for now := start; now < start+time.Second; now += timers.Renew {
		w.round(x, now)
		last = now
	}
	if !x.MayHold(Claim{"r", 5}, last) {
		t.Fatalf("x lost r while renewing")
	}
	for _, v := range []string{"v1", "v2", "v3"} {
		w.assign(v, "y", 9) // x is cut off; r and s move to y
	}
	y := NewHolder(timers, "y", 1)
	y.SetVoters([]string{"v1", "v2", "v3"})
	y.SetClaims([]Claim{{"r", 9}})
	for now := last + ms; now < last+timers.Lease+timers.Margin; now += ms {
		w.round(y, now)
		if y.MayHold(Claim{"r", 9}, now) {
			t.Fatalf("y confirmed %v after x's last confirmation, before Lease+Margin (%v)", now-last, timers.Lease+timers.Margin)
		}
	}
	w.round(y, last+timers.Lease+timers.Margin)
	if !y.MayHold(Claim{"r", 9}, last+timers.Lease+timers.Margin) {
		t.Fatalf("y not confirmed once x's lease is over")
	}
}

// A set too large for one datagram goes in parts; the voter answers once it has
// them all, also when a part was lost in an earlier round.
func TestClaimSetInParts(t *testing.T) {
	cs := manyClaims(1000)
	h := NewHolder(timers, "x", 1)
	h.SetVoters([]string{"v1"})
	h.SetClaims(cs)
	v := NewVoter(timers, 0)
	all := func(string) (string, uint64, bool) { return "x", 7, true }
	now := timers.Lease + timers.Margin
	out := h.Round(now)
	if len(out) < 4 {
		t.Fatalf("1,000 claims went in %d renewals, want parts of at most %d bytes", len(out), DefaultChunkBytes)
	}
	for _, o := range out {
		b, err := MarshalRenewal(o.Renewal)
		if err != nil || len(b) > DefaultChunkBytes+200 {
			t.Fatalf("part %d: %d bytes, err %v", o.Renewal.Part, len(b), err)
		}
	}
	// Round 1 loses the last part: no answer.
	for _, o := range out[:len(out)-1] {
		if _, ok := v.Handle(now, o.Renewal, 1, all); ok {
			t.Fatalf("answered part %d of %d before the set was complete", o.Renewal.Part, o.Renewal.Parts)
		}
	}
	// Until resendFull has passed, renewals carry only the rev: the voter, still
	// lacking a part, asks for the set.
	now += timers.Renew
	if plain := h.Round(now); len(plain) != 1 || plain[0].Renewal.Full {
		t.Fatalf("parts resent %v after the last ones, want a plain renewal until %v", timers.Renew, h.resendFull())
	} else if rep, _ := v.Handle(now, plain[0].Renewal, 1, all); !rep.NeedSet {
		t.Fatalf("voter missing a part answered %+v, want NeedSet", rep)
	}
	// The next full send delivers only the last part: the set is complete.
	now += h.resendFull()
	out = h.Round(now)
	rep, ok := v.Handle(now, out[len(out)-1].Renewal, 1, all)
	if !ok || len(rep.Denied) != 0 || rep.NeedSet {
		t.Fatalf("after every part arrived: reply %v, ok %v", rep, ok)
	}
	rep.Voter = "v1"
	h.Receive(rep)
	if !h.MayHold(cs[999], now) {
		t.Fatalf("claim from the last part not confirmed")
	}
	if next := h.Round(now + timers.Renew); len(next) != 1 || next[0].Renewal.Full {
		t.Fatalf("after the voter acked the set: %d renewals (full %v), want one without claims", len(next), next[0].Renewal.Full)
	}
}

// A reply whose lists do not fit a datagram collapses to the safe summaries.
func TestReplyTooLargeCollapses(t *testing.T) {
	r := Reply{Voter: "v1", Node: "x", Seq: 3, Rev: 9}
	for i := range 5000 {
		r.Denied = append(r.Denied, fmt.Sprintf("resource-number-%05d", i))
	}
	b, err := MarshalReply(r)
	if err != nil {
		t.Fatal(err)
	}
	_, got, err := Unmarshal(b)
	if err != nil || !got.DeniedAll || len(got.Denied) != 0 {
		t.Fatalf("got %+v, err %v; want DeniedAll", got, err)
	}
	h := NewHolder(timers, "x", 1)
	h.SetVoters([]string{"v1"})
	h.SetClaims([]Claim{{"a", 1}})
	h.Round(time.Second)
	h.Receive(Reply{Voter: "v1", Node: "x", Seq: 1, Rev: h.rev, DeniedAll: true})
	if h.MayHold(Claim{"a", 1}, time.Second) {
		t.Fatalf("DeniedAll confirmed a claim")
	}
}

// A voter that never answers (a dead node still in the raft configuration) gets a
// set in parts ever less often, up to 2^maxResendBackoff resendFull; as soon as it
// answers again (here: asks for the set after a restart), the backoff is over.
func TestSilentVoterBackoff(t *testing.T) {
	cs := manyClaims(1000)
	h := NewHolder(timers, "x", 1)
	h.SetVoters([]string{"dead"})
	h.SetClaims(cs)
	var fullAt []time.Duration
	now := time.Duration(0)
	end := 60 * h.resendFull() << maxResendBackoff
	for ; now < end; now += timers.Renew {
		if out := h.Round(now); len(out) > 1 {
			fullAt = append(fullAt, now)
		}
	}
	if len(fullAt) < maxResendBackoff+2 {
		t.Fatalf("full sends at %v: want the set resent, ever less often", fullAt)
	}
	for i := 2; i < len(fullAt); i++ {
		gap, prev := fullAt[i]-fullAt[i-1], fullAt[i-1]-fullAt[i-2]
		if gap < prev {
			t.Errorf("send %d came %v after the one before, sooner than the %v gap before it", i, gap, prev)
		}
	}
	maxGap := (h.resendFull() << maxResendBackoff) + timers.Renew
	if last := fullAt[len(fullAt)-1] - fullAt[len(fullAt)-2]; last > maxGap {
		t.Errorf("last gap %v, want at most %v", last, maxGap)
	}
	want := int(end/(h.resendFull()<<maxResendBackoff)) + maxResendBackoff + 2
	if len(fullAt) > want {
		t.Errorf("%d full sends in %v to a silent voter, want at most %d", len(fullAt), end, want)
	}

	// The voter restarts and asks for the set: the next round sends it.
	plain := h.Round(now)
	if len(plain) != 1 {
		t.Fatalf("round right after a full send: %d renewals, want 1", len(plain))
	}
	h.Receive(Reply{Voter: "dead", Node: "x", Seq: plain[0].Renewal.Seq, Rev: plain[0].Renewal.Rev, NeedSet: true})
	now += h.resendFull()
	if out := h.Round(now); len(out) < 2 {
		t.Errorf("resendFull after the voter asked for the set: %d renewals, want the parts", len(out))
	}
}

// A holder whose leases are longer than the voter's (nodes configured with
// different profiles) is waited out for its own lease, not the voter's.
func TestVoterWaitsTheHoldersLongerLease(t *testing.T) {
	long := timers
	long.Lease = 4 * timers.Lease
	v := NewVoter(timers, 0)
	owner := "a"
	assigned := func(string) (string, uint64, bool) { return owner, 1, true }
	start := timers.Lease + timers.Margin // past the voter's own quarantine
	ra := Renewal{Node: "a", Inc: 1, Seq: 1, Rev: Rev([]Claim{{"vip", 1}}), Claims: []Claim{{"vip", 1}}, Full: true, Lease: long.Lease}
	if start < long.Lease+timers.Margin {
		// The voter only now learns of a longer lease: its restart quarantine
		// grows to cover it.
		if rep, _ := v.Handle(start, ra, 1, assigned); !rep.DeniedAll && len(rep.Denied) == 0 {
			t.Fatalf("confirmed inside the quarantine of the holder's longer lease: %+v", rep)
		}
	}
	at := long.Lease + timers.Margin
	ra.Seq = 2
	if rep, _ := v.Handle(at, ra, 1, assigned); len(rep.Denied) != 0 || rep.DeniedAll {
		t.Fatalf("a's claim denied after the quarantine: %+v", rep)
	}
	// a goes silent; the resource moves to b at epoch 2.
	owner = "b"
	assignedB := func(string) (string, uint64, bool) { return "b", 2, true }
	rb := Renewal{Node: "b", Inc: 1, Seq: 1, Rev: Rev([]Claim{{"vip", 2}}), Claims: []Claim{{"vip", 2}}, Full: true, Lease: timers.Lease}
	afterOwn := at + timers.Lease + timers.Margin // the voter's own wait is over ...
	if rep, _ := v.Handle(afterOwn, rb, 2, assignedB); len(rep.Denied) == 0 && !rep.DeniedAll {
		t.Fatalf("b confirmed %v after a's last confirmation: a holds for %v", afterOwn-at, long.Lease)
	}
	rb.Seq = 2
	afterLong := at + long.Lease + timers.Margin // ... a's is over only now
	if rep, _ := v.Handle(afterLong, rb, 3, assignedB); len(rep.Denied) != 0 || rep.DeniedAll {
		t.Fatalf("b still denied %v after a's last confirmation: %+v", afterLong-at, rep)
	}
}
