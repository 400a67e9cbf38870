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

// checkLease is the lease-deadline check before every add and announcement.
func (a *Agent) checkLease(ad resource.Address) error {
	return a.checkLeaseIP(ad.Prefix.Addr())
}

func (a *Agent) checkLeaseIP(ip netip.Addr) error {
	a.live.mu.Lock()
	st := a.live.state
	name, ok := a.live.byIP[ip]
	a.live.mu.Unlock()
	epoch := st.Assignments[name].Epoch
	if !ok || st.Assignments[name].Node != a.cfg.NodeID {
		return fmt.Errorf("%w: %s is not assigned to this node", ErrNoLease, ip)
	}
	if !a.live.MayHold(name, epoch) {
		return fmt.Errorf("%w: the lease of %s (%s) is not confirmed by a majority of voters", ErrNoLease, name, ip)
	}
	return nil
}

// beforeAnnounce is the announcer's check: the lease first, then the takeover's
// timeline is closed at its first announcement.
func (a *Agent) beforeAnnounce(ip netip.Addr) error {
	if err := a.checkLeaseIP(ip); err != nil {
		return err
	}
	if tl := a.tl.announced(ip, time.Now()); tl != nil {
		a.met.failoverPhase.WithLabelValues("address_up").Observe(tl.up.Sub(tl.assigned).Seconds())
		a.met.failoverPhase.WithLabelValues("announce").Observe(tl.announced.Sub(tl.up).Seconds())
		a.event(EventFailover, tl.resource, tl.String(), tl.fields())
	}
	return nil
}

