package agent

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/consensus/lease"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/resource"
)

// Event ids (DESIGN.md, "Event ids"): Windows failover clustering's numbers where the
// meaning matches.
const (
	EventNetBIOSInterface = 1044
	EventAddressInUse     = 1049
	EventResourceFailed   = 1069
	EventWINSFailed       = 1078
	EventNodeRemoved      = 1135
	EventQuorumLost       = 1177
	EventNameConflict     = 4320
)

// resyncPeriod is how often the reconciler compares the kernel with the plan when
// nothing triggers it while work is pending here (an address waiting for its lease
// or a rival, a failed add, a kept address whose keep list the companion needs
// refreshed); settledResync when every resource here is online and nothing is
// kept: a safety net under the netlink subscription, which reports drift at once.
// (A pass reads back every address: with 1,000 held, a 2 s resync alone was over
// 1 % of a core.)
const (
	resyncPeriod  = 2 * time.Second
	settledResync = 30 * time.Second
)

// Cluster addresses carry a valid_lft (Config.AddressLifetime, default 30 s),
// refreshed every third of it while the lease holds: a node frozen (VM paused, agent
// and companion both stuck) loses its addresses within it. At about 26 µs per
// refresh, 1,000 addresses cost 0.26 % of a core; the price is that a takeover from
// such a frozen node waits (after an ARP probe finds it still answering) up to this
// long.

// observation is one resource's state as this node sees it.
type observation struct {
	State   string
	Reason  string
	Event   int
	Epoch   uint64
	Since   time.Time
	NetBIOS []api.NameStatus
}

// observed holds this node's observations, served to the cluster at /v1/local.
type observed struct {
	mu sync.Mutex // guards m
	m  map[string]observation
}

func newObserved() *observed { return &observed{m: make(map[string]observation)} }

func (o *observed) snapshot() map[string]observation {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string]observation, len(o.m))
	for k, v := range o.m {
		out[k] = v
	}
	return out
}

func (o *observed) replace(m map[string]observation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, v := range m {
		if prev, ok := o.m[k]; ok && prev.State == v.State && prev.Reason == v.Reason {
			v.Since = prev.Since
			m[k] = v
		}
	}
	o.m = m
}

// runReconcile makes the kernel hold what the replicated state assigns to this node.
// Triggers: raft applies, kernel address events, and a periodic resync.
func (a *Agent) runReconcile(ctx context.Context) error {
	tick := time.NewTimer(resyncPeriod)
	defer tick.Stop()
	refresh := time.NewTicker(a.cfg.Lifetime() / 3)
	defer refresh.Stop()
	changes := a.store.Changes()
	pass := true
	for {
		if pass {
			if a.reconcileOnce(ctx) {
				tick.Reset(settledResync)
			} else {
				tick.Reset(resyncPeriod)
			}
		}
		pass = true
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-changes:
		case <-a.wake:
		case <-tick.C:
			a.mgr.Invalidate() // the safety net: read the kernel even if nothing was heard
		case <-refresh.C:
			// Lifetimes only: a refresh changes nothing a pass would look at (with
			// 1,000 held, a pass after each refresh cost as much as the refresh).
			pass = false
			a.keep.refreshing.Store(true) // kept addresses may be refreshed, never added
			err := a.mgr.Refresh(ctx)
			a.keep.refreshing.Store(false)
			if err != nil {
				a.log.Warn("refresh address lifetimes", "err", err)
				pass = true // a refresh that failed may have found an address gone
			}
		}
	}
}

// reconcileOnce runs one pass; it reports whether everything assigned here is
// settled (online, nothing failed, pending or kept).
func (a *Agent) reconcileOnce(ctx context.Context) (settled bool) {
	st, _ := a.store.State()
	self := a.cfg.NodeID
	byAddr := make(map[resource.Address]held)
	var want []resource.Address
	obs := make(map[string]observation)
	now := time.Now()
	kept := map[netip.Addr]string{}
	var cut, cutKnown bool // cutOff, asked once per pass and only when needed
	cutOff := func() bool {
		if !cutKnown {
			cut, cutKnown = a.cutOff(), true
		}
		return cut
	}
	for name, asg := range st.Assignments {
		r, ok := st.Resources[name]
		if !ok || asg.Node != self || r.Offline {
			continue
		}
		a.tl.seen(name, asg.Epoch, r.Address.Addr(), now)
		if !a.live.MayHold(name, asg.Epoch) {
			e, inKernel := a.heldEpochs[name]
			held := inKernel && e == asg.Epoch
			if !held || !r.KeepsOnQuorumLoss() || decideHold(false, held, true, cutOff()) != holdKeep {
				// Assigned, but a majority of voters has not confirmed the lease yet (the
				// previous holder's may still run), or this node lost it.
				obs[name] = observation{State: api.StateOnlinePending, Reason: "waiting for a majority of voters to confirm the lease", Epoch: asg.Epoch, Since: now}
				continue
			}
			kept[r.Address.Addr()] = name
		}
		ad := resource.Address{Prefix: r.Address, Interface: r.Interface}
		want = append(want, ad)
		byAddr[ad] = held{name, asg.Epoch}
	}
	started, ended := a.keep.set(kept)
	want = a.filterTakeovers(ctx, want, byAddr, obs, now)
	a.detachLeaving(ctx, st, byAddr)
	res, err := a.mgr.Apply(ctx, want)
	if err != nil {
		a.log.Error("address batch incomplete; will retry", "err", err)
	}
	added := map[resource.Address]bool{}
	for _, ad := range res.Plan.Add {
		added[ad] = true
	}
	upAt := time.Now()
	assignedHere := map[string]bool{}
	for name, asg := range st.Assignments {
		if asg.Node == self {
			assignedHere[name] = true
		}
	}
	a.tl.drop(assignedHere)
	a.noteLeaseLoss(st, byAddr)
	for ad, h := range byAddr {
		if _, bad := res.Failed[ad]; added[ad] && !bad {
			a.tl.up(h.name, upAt)
		}
		o := observation{State: api.StateOnline, Epoch: h.epoch, Since: now}
		if ferr, bad := res.Failed[ad]; bad && errors.Is(ferr, ErrNoLease) {
			o.State, o.Reason = api.StateOnlinePending, ferr.Error()
		} else if bad {
			o.State, o.Reason, o.Event = api.StateFailed, ferr.Error(), EventResourceFailed
		}
		if _, k := kept[ad.Prefix.Addr()]; k && o.State == api.StateOnline {
			o.Reason, o.Event = keptReason, EventQuorumLost
		}
		obs[h.name] = o
	}
	for _, d := range res.Drift {
		a.log.Warn("drift repaired", "vip", d.Address.Prefix.String(), "link", d.Address.Interface, "drift", d.Kind.String())
	}
	heldNow := a.heldResources(st)
	a.live.SetHeld(heldNow)
	if a.fence != nil {
		a.fence.setKeep(fenceKeepList(st, self, heldNow), lease.Boottime()+keepStall)
	}
	a.noteKept(started, ended, st)
	names := make(map[string]bool, len(heldNow))
	for name := range heldNow {
		names[name] = true
	}
	a.nb.Sync(st, names)
	a.rememberSpecs(st, heldNow)
	for ad, h := range byAddr {
		if _, bad := res.Failed[ad]; added[ad] && !bad {
			a.runOnline(ctx, h.name, st.Resources[h.name], "assigned to "+self)
		}
	}
	for name, o := range obs {
		if o.State != api.StateOnline {
			continue
		}
		nst, nerr := a.nb.status(name)
		o.NetBIOS = nst
		if nerr != nil {
			o.State, o.Reason, o.Event = api.StateFailed, nerr.Error(), EventNetBIOSInterface
		}
		if why := a.unhealthy(name); why != "" {
			o.State, o.Reason, o.Event = api.StateFailed, why, EventResourceFailed
		}
		obs[name] = o
	}
	prev := a.obs.snapshot()
	for name, o := range obs {
		if o.State == api.StateFailed && (prev[name].State != api.StateFailed || prev[name].Reason != o.Reason) {
			id := o.Event
			if id == 0 {
				id = EventResourceFailed
			}
			a.event(id, name, "resource "+name+" failed on "+self+": "+o.Reason, nil)
			a.runFailed(ctx, name, st.Resources[name], o.Reason)
			a.groupFailed(ctx, st, name, o.Reason)
		}
	}
	a.syncGroupHooks(ctx, st, obs)
	a.obs.replace(obs)
	return len(kept) == 0 && len(res.Failed) == 0 && allOnline(obs)
}

func allOnline(obs map[string]observation) bool {
	for _, o := range obs {
		if o.State != api.StateOnline {
			return false
		}
	}
	return true
}

// noteLeaseLoss reports resources still assigned here whose lease ran out while the
// address was held: a majority of voters stopped confirming (quorum lost from this
// node's side), so the address goes by design (event 1177).
func (a *Agent) noteLeaseLoss(st consensus.State, wanted map[resource.Address]held) {
	keep := make(map[string]bool, len(wanted))
	for _, h := range wanted {
		keep[h.name] = true
	}
	var lost []string
	for name := range a.heldEpochs {
		if asg, ok := st.Assignments[name]; ok && asg.Node == a.cfg.NodeID && !keep[name] {
			lost = append(lost, name)
		}
	}
	if len(lost) > 0 {
		a.met.leaseLost.Add(float64(len(lost)))
		a.event(EventQuorumLost, "", fmt.Sprintf("node %s lost the lease on %d addresses (%v): a majority of voters stopped confirming them; released by design until the voters are reachable again", a.cfg.NodeID, len(lost), lost), nil)
	}
}

// detachLeaving releases the NetBIOS names of addresses that are about to go because
// they moved away (a graceful move, a delete, offline): releases go out while the
// address still exists (Q184832). The wait is bounded well inside the lease: an
// address whose lease ran out goes at once, and its names are released after.
func (a *Agent) detachLeaving(ctx context.Context, st consensus.State, wanted map[resource.Address]held) {
	keep := make(map[string]bool, len(wanted))
	for _, h := range wanted {
		keep[h.name] = true
	}
	var moving, gone []string
	for name := range a.heldEpochs {
		if keep[name] {
			continue
		}
		asg, ok := st.Assignments[name]
		r, exists := st.Resources[name]
		switch {
		case !exists || r.Offline:
			gone = append(gone, name) // nobody takes it over: release at leisure
		case !ok || asg.Node != a.cfg.NodeID:
			moving = append(moving, name) // another node may take it: stay inside the lease
		}
	}
	budget := (a.timers.Lease - a.timers.Guard - a.timers.Renew) / 2
	if len(gone) > 0 {
		a.groupsLeaving(ctx, st, gone, 0, "a member goes offline here")
		a.runOffline(ctx, st, gone, 0)
		a.nb.detach(gone, 0)
	}
	if len(moving) > 0 {
		start := time.Now()
		a.groupsLeaving(ctx, st, moving, budget, "moving away from "+a.cfg.NodeID)
		a.runOffline(ctx, st, moving, max(budget-time.Since(start), time.Millisecond))
		a.nb.detach(moving, max(budget-time.Since(start), time.Millisecond))
	}
}

// busyAddr is a takeover a probe found still answered by another host.
type busyAddr struct {
	mac   string
	until time.Time // do not probe again before
}

// held names the resource behind a wanted address.
type held struct {
	name  string
	epoch uint64
}

// filterTakeovers probes addresses this node is about to take over from a node whose
// lease merely timed out; those someone still answers for are not added (event
// 1049) and are tried again on the next pass.
func (a *Agent) filterTakeovers(ctx context.Context, want []resource.Address, byAddr map[resource.Address]held, obs map[string]observation, now time.Time) []resource.Address {
	have := map[resource.Address]bool{}
	for _, ad := range a.mgr.Recorded() {
		have[ad] = true
	}
	var probe []resource.Address
	answered := map[resource.Address]string{}
	for _, ad := range want {
		h := byAddr[ad]
		if have[ad] || !a.live.Takeover(h.name, h.epoch) {
			continue
		}
		if b, ok := a.busy[ad]; ok && now.Before(b.until) {
			answered[ad] = b.mac // asked a moment ago; ask again later
			continue
		}
		probe = append(probe, ad)
	}
	if len(probe) == 0 && len(answered) == 0 {
		return want
	}
	for ad, mac := range a.probeTakeovers(ctx, probe) {
		answered[ad] = mac
		if _, known := a.busy[ad]; !known {
			h := byAddr[ad]
			a.event(EventAddressInUse, h.name, fmt.Sprintf("not taking %s over yet: %s still answers for it (its node's lease ran out but the host keeps the address; it goes when that host's address lifetime ends, within %s)", ad.Prefix.Addr(), mac, a.cfg.Lifetime()), nil)
		}
		a.busy[ad] = busyAddr{mac: mac, until: now.Add(probeRetry)}
		a.recordConflict(ad.Prefix.Addr(), mac)
		time.AfterFunc(probeRetry, a.poke)
	}
	for ad := range a.busy {
		if _, still := answered[ad]; !still {
			delete(a.busy, ad)
		}
	}
	if len(answered) == 0 {
		return want
	}
	kept := want[:0:0]
	for _, ad := range want {
		mac, busy := answered[ad]
		if !busy {
			kept = append(kept, ad)
			continue
		}
		h := byAddr[ad]
		delete(byAddr, ad)
		reason := "another host (" + mac + ") still answers for " + ad.Prefix.Addr().String() + "; waiting for it to let go (its address lifetime runs out within " + a.cfg.Lifetime().String() + ")"
		obs[h.name] = observation{State: api.StateOnlinePending, Reason: reason, Event: EventAddressInUse, Epoch: h.epoch, Since: now}
	}
	return kept
}

// heldResources maps what the kernel holds now (as recorded) to resources and the
// epoch each was added under, for the lease claims.
func (a *Agent) heldResources(st consensus.State) map[string]uint64 {
	prev := a.heldEpochs
	out := make(map[string]uint64)
	byIP := make(map[netip.Addr]string, len(st.Resources))
	for name, r := range st.Resources {
		byIP[r.Address.Addr()] = name
	}
	for _, ad := range a.mgr.Recorded() {
		name, ok := byIP[ad.Prefix.Addr()]
		if !ok {
			continue
		}
		epoch := st.Assignments[name].Epoch
		if asg := st.Assignments[name]; asg.Node != a.cfg.NodeID {
			epoch = prev[name] // no longer ours: claim it at the epoch we held it under
		}
		out[name] = epoch
	}
	a.heldEpochs = out
	return out
}

// watchKernel pokes the reconciler on every address change in this namespace, so
// drift (an address deleted by hand) is repaired at once.
func (a *Agent) watchKernel(ctx context.Context) error {
	for {
		err := a.watchOnce(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The subscription overflowed (ENOBUFS when 1,000 addresses go at once) or
		// closed: resync with a reconcile pass and subscribe again; never stop the agent.
		a.log.Warn("address subscription lost; resubscribing", "err", err)
		a.kernelChanged()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// kernelChanged makes the next reconcile pass read and verify the kernel (the
// address manager skips a batch it already verified otherwise) and wakes it.
func (a *Agent) kernelChanged() {
	a.mgr.Invalidate()
	a.poke()
}

func (a *Agent) watchOnce(ctx context.Context) error {
	// Deletions only (additions and lifetime refreshes are filtered out in the
	// kernel); route deletions too: a cluster address's prefix or local route removed
	// by hand is drift the read-back repairs, and the settled resync is 30 s away.
	w, err := resource.NewDeletionWatch()
	if err != nil {
		return err
	}
	return w.Run(ctx, a.kernelChanged)
}

// ownerObservation merges an assignment with what its holder reports.
func ownerObservation(asg consensus.Assignment, r consensus.Resource, o observation, reachable bool) (string, string, int) {
	switch {
	case r.Offline:
		return api.StateOffline, "", 0
	case asg.Node == "":
		return api.StateOffline, "no node may hold it (check possible owners and drained nodes)", 0
	case !reachable:
		return api.StateOnlinePending, "holder not reachable", 0
	case o.State == "" || o.Epoch != asg.Epoch:
		return api.StateOnlinePending, "", 0
	}
	return o.State, o.Reason, o.Event
}
