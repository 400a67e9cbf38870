package agent

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/clusterd/clusterd/resource"
)

// ErrNoLease vetoes an add or an announcement whose lease does not run.
var ErrNoLease = errors.New("no lease")

// checkLease is the lease-deadline check before every add and lifetime refresh. An
// address kept through a quorum loss (on_quorum_loss = keep) passes only while the
// reconciler refreshes lifetimes: it may stay, never be added again.
func (a *Agent) checkLease(ad resource.Address) error {
	return a.checkLeaseIP(ad.Prefix.Addr(), a.keep.refreshing.Load())
}

// checkLeaseIP passes if the lease on ip runs, or if keptOK and ip is held without a
// lease through a quorum loss.
func (a *Agent) checkLeaseIP(ip netip.Addr, keptOK bool) error {
	a.live.mu.Lock()
	st := a.live.state
	name, ok := a.live.byIP[ip]
	a.live.mu.Unlock()
	epoch := st.Assignments[name].Epoch
	if !ok || st.Assignments[name].Node != a.cfg.NodeID {
		return fmt.Errorf("%w: %s is not assigned to this node", ErrNoLease, ip)
	}
	if a.live.MayHold(name, epoch) || (keptOK && a.keep.isKept(ip)) {
		return nil
	}
	if a.keep.isKept(ip) {
		return fmt.Errorf("%w: %s (%s) is kept through a quorum loss without a lease (on_quorum_loss = keep), so it may stay but not be added again", ErrNoLease, name, ip)
	}
	return fmt.Errorf("%w: the lease of %s (%s) is not confirmed by a majority of voters", ErrNoLease, name, ip)
}

// beforeAnnounce is the announcer's check: the lease first, then the takeover's
// timeline is closed at its first announcement.
func (a *Agent) beforeAnnounce(ip netip.Addr) error {
	if err := a.checkLeaseIP(ip, true); err != nil { // a kept address may be re-announced
		return err
	}
	if tl := a.tl.announced(ip, time.Now()); tl != nil {
		a.met.failoverPhase.WithLabelValues("address_up").Observe(tl.up.Sub(tl.assigned).Seconds())
		a.met.failoverPhase.WithLabelValues("announce").Observe(tl.announced.Sub(tl.up).Seconds())
		a.event(EventFailover, tl.resource, tl.String(), tl.fields())
	}
	return nil
}
