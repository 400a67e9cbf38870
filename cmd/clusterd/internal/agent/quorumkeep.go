package agent

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/clusterd/clusterd/consensus"
)

// on_quorum_loss = keep (consensus.Resource.OnQuorumLoss).
//
// By default a holder drops an address when its lease runs out (event 1177): at most
// one node ever holds it. A resource that opts into "keep" stays on this node when
// the lease runs out because this node cannot reach a majority of the voters at all
// (no answers, confirming or denying, to any renewal sent within Lease − Guard):
// its address stays in the kernel with its lifetime refreshed and its NetBIOS names,
// and it is re-announced, but it is never newly added without a lease. When voters
// answer again and deny the claim (the majority moved the resource meanwhile), it is
// dropped at once, as without keep. The price, stated wherever the setting is: if
// the majority is alive on the other side of a partition, it fails the resource over
// and TWO NODES HOLD THE ADDRESS until the partition heals.
//
// The fencing companion is told which addresses are kept ("K" lines, fence.go): at
// the lease deadline it leaves them alone, but it removes them too when the agent
// dies (its pipe closes) or stops refreshing the keep list (keepStall): keep covers a
// lost quorum, not a dead or stalled agent.

// keepStall is how long the companion honours a keep list the agent has not
// refreshed. The reconciler refreshes it on every pass (at least every resyncPeriod,
// 2 s), so 5 s leaves two missed passes of slack; a stalled agent's kept addresses go
// within it (rather than at the end of their 30 s kernel lifetime), so a takeover by
// the majority waits at most this long behind its ARP probe (event 1049).
const keepStall = 5 * time.Second

// holdVerdict is what the reconciler does with a resource assigned to this node.
type holdVerdict int

const (
	holdWait  holdVerdict = iota // no lease, not in the kernel: wait for the voters to confirm
	holdLease                    // the lease runs: hold it
	holdKeep                     // no lease, cut off from every majority, policy keep, in the kernel: hold it on
	holdDrop                     // no lease and not kept: drop it (event 1177 if it was held)
)

func (v holdVerdict) String() string {
	return [...]string{"wait", "lease", "keep", "drop"}[v]
}

// decideHold is the pure decision behind on_quorum_loss. leased: a majority of voters
// confirmed the claim within the lease. held: the address is in this node's kernel,
// added under the assignment's epoch. keep: the resource's policy is keep. cutOff:
// no majority of voters answered at all (as opposed to answering and denying).
func decideHold(leased, held, keep, cutOff bool) holdVerdict {
	switch {
	case leased:
		return holdLease
	case !held:
		return holdWait // never add an address without a lease, kept or not
	case keep && cutOff:
		return holdKeep
	}
	return holdDrop
}

// cutOff reports whether no majority of voters answered (confirming or denying) a
// renewal sent within the last Lease − Guard. That is the window a lease deadline is
// computed over, so when a deadline passes for lack of answers this is already true;
// when voters answer and deny, it stays false and the address drops.
func (a *Agent) cutOff() bool {
	l := a.live
	l.mu.Lock()
	defer l.mu.Unlock()
	return !l.holder.Reachable(l.now() + l.t.Guard)
}

// keepState is what the reconciler shares with the lease checks and readiness about
// addresses held without a lease.
type keepState struct {
	// refreshing is set while the reconciler renews address lifetimes: the only
	// kernel write a kept address may get (an add of one that vanished is refused).
	refreshing atomic.Bool

	mu   sync.Mutex            // guards kept
	kept map[netip.Addr]string // address → resource, held now without a lease
}

// set installs this pass's kept addresses and returns the resources that started
// and stopped being kept.
func (k *keepState) set(now map[netip.Addr]string) (started, ended []string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	was := make(map[string]bool, len(k.kept))
	for _, name := range k.kept {
		was[name] = true
	}
	is := make(map[string]bool, len(now))
	for _, name := range now {
		is[name] = true
		if !was[name] {
			started = append(started, name)
		}
	}
	for name := range was {
		if !is[name] {
			ended = append(ended, name)
		}
	}
	k.kept = now
	slices.Sort(started)
	slices.Sort(ended)
	return started, ended
}

// isKept reports whether ip is held without a lease now.
func (k *keepState) isKept(ip netip.Addr) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, ok := k.kept[ip]
	return ok
}

// count returns how many addresses are held without a lease.
func (k *keepState) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.kept)
}

// keptReason is the status line of a kept resource.
const keptReason = "kept without a lease: this node cannot reach a majority of voters (on_quorum_loss = keep); " +
	"if the majority is alive elsewhere another node may hold the address too"

// noteKept reports the resources that started or stopped being held without a lease.
func (a *Agent) noteKept(started, ended []string, st consensus.State) {
	if len(started) > 0 {
		a.event(EventQuorumLost, "", fmt.Sprintf("node %s cannot reach a majority of voters: keeping %d addresses without a lease (%s) because their on_quorum_loss is keep; "+
			"TWO HOLDERS ARE POSSIBLE if the majority is alive and moved them; they drop as soon as the voters answer and deny them (or run `clusterd recover` if the other voters are lost for good)",
			a.cfg.NodeID, len(started), strings.Join(started, ", ")), nil)
	}
	if len(ended) == 0 {
		return
	}
	var leased, dropped []string
	for _, name := range ended {
		if asg := st.Assignments[name]; asg.Node == a.cfg.NodeID && a.live.MayHold(name, asg.Epoch) {
			leased = append(leased, name)
		} else {
			dropped = append(dropped, name)
		}
	}
	if len(leased) > 0 {
		a.log.Info("kept addresses are under a lease again", "node", a.cfg.NodeID, "resources", strings.Join(leased, ","))
	}
	if len(dropped) > 0 {
		a.log.Warn("kept addresses dropped: the voters answer again and no longer confirm them here (moved), or they left the kernel", "node", a.cfg.NodeID, "resources", strings.Join(dropped, ","))
	}
}

// fenceKeepList returns the addresses the fencing companion must leave alone at the
// lease deadline: those held here (in the kernel) whose resource is assigned here
// with policy keep. It is sent whether or not the lease runs, so that it is in
// place before the deadline passes.
func fenceKeepList(st consensus.State, self string, held map[string]uint64) []netip.Addr {
	var out []netip.Addr
	for name := range held {
		r, ok := st.Resources[name]
		if ok && r.KeepsOnQuorumLoss() && !r.Offline && st.Assignments[name].Node == self {
			out = append(out, r.Address.Addr())
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}

// leaseReadyReason is /readyz's "lease" line when this node is cut off.
func (a *Agent) leaseReadyReason() string {
	const base = "cut off from a majority of voters: no lease renewal answered within the lease; "
	if n := a.keep.count(); n > 0 {
		return base + fmt.Sprintf("keeping %d addresses without a lease (on_quorum_loss = keep: another node may hold them too); every other address is released until the voters answer again", n)
	}
	return base + "this node holds no addresses until they answer again"
}
