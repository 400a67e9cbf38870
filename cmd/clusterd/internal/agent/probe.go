package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus/lease"
	"github.com/clusterd/clusterd/resource"
	"github.com/clusterd/clusterd/resource/announce"
)

// Takeover reports whether this node got the resource by timing out another node's
// lease (so that node may still answer for the address).
// Once seen, it sticks until the address is held: voters stop flagging it after a
// while, but the other node may answer for far longer.
func (l *leases) Takeover(resource string, epoch uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := lease.Claim{Resource: resource, Epoch: epoch}
	if l.holder.Takeover(c) {
		if l.probe == nil {
			l.probe = map[lease.Claim]bool{}
		}
		l.probe[c] = true
	}
	return l.probe[c]
}

// probeRetry is how long after a takeover probe found the address still answered the
// next probe of it waits.
const probeRetry = 500 * time.Millisecond

// takeoverProbeRate and takeoverProbeBurst pace takeover probes on a link (their own
// budget, apart from announcements): a survivor taking over 500 addresses sends 1,000
// probe frames, which at the announcement pace (2,000/s, burst 200) held the
// takeover back 0.4 s. 60-byte ARP requests at 10,000/s are 0.6 MB/s for a moment.
const (
	takeoverProbeRate  = 10000
	takeoverProbeBurst = 1000
)

// probeTakeovers asks by ARP (IPv6: NS) whether anyone still answers for each address
// before it is taken over from a node that may be alive (RFC 5227 style), and returns
// the ones someone answered for, with the answering MAC. One socket per interface
// and family probes them all at once (a mass failover probes thousands).
func (a *Agent) probeTakeovers(ctx context.Context, ads []resource.Address) map[resource.Address]string {
	cfg := announce.ProbeConfig{Count: 2, Interval: a.timers.Probe / 2, Wait: a.timers.Probe,
		Rate: takeoverProbeRate, Burst: takeoverProbeBurst}
	byLink := map[string][]netip.Addr{}
	back := map[[2]string]resource.Address{}
	for _, ad := range ads {
		byLink[ad.Interface] = append(byLink[ad.Interface], ad.Prefix.Addr())
		back[[2]string{ad.Interface, ad.Prefix.Addr().String()}] = ad
	}
	answered := map[resource.Address]string{}
	for link, ips := range byLink {
		found, err := announce.ProbeAll(ctx, link, ips, cfg)
		if err != nil {
			a.log.Warn("takeover probe failed; taking over without it", "link", link, "count", len(ips), "err", err)
		}
		for ip, mac := range found {
			answered[back[[2]string{link, ip.String()}]] = mac.String()
		}
	}
	return answered
}

// selfProbePeriod is how often each held address is probed for a rival (ARP replies
// are unicast to the asker, so a holder cannot see a rival passively). Once a second
// the next share of the held addresses (len/30, at least one) is probed in one batch
// per interface, on one socket: with 1,000 addresses that is 34 probes a second and
// one socket, not a socket per address.
const (
	selfProbePeriod = 30 * time.Second
	selfProbeTick   = time.Second
)

// runSelfProbe probes this node's own addresses now and then; someone else
// answering is a conflict (event 1049).
func (a *Agent) runSelfProbe(ctx context.Context) error {
	cfg := announce.ProbeConfig{Count: 2, Interval: 20 * time.Millisecond, Wait: 100 * time.Millisecond}
	t := time.NewTicker(selfProbeTick)
	defer t.Stop()
	next := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		var batch map[string][]netip.Addr
		batch, next = selfProbeBatch(a.mgr.Recorded(), next)
		for link, ips := range batch {
			rivals, err := announce.ProbeAll(ctx, link, ips, cfg)
			if err != nil {
				continue // no interface, no CAP_NET_RAW, overrun: try again next period
			}
			for ip, mac := range rivals {
				a.event(EventAddressInUse, a.resourceAt(ip), fmt.Sprintf("address %s held here is also answered by %s on %s: another host uses it (find it by its MAC and remove the address there)", ip, mac, link), nil)
				a.recordConflict(ip, mac.String())
			}
		}
	}
}

// selfProbeBatch picks this tick's share of the held addresses, starting at next
// (wrapping), grouped by interface, and returns where the next tick starts.
func selfProbeBatch(held []resource.Address, next int) (map[string][]netip.Addr, int) {
	if len(held) == 0 {
		return nil, 0
	}
	n := (len(held)*int(selfProbeTick/time.Millisecond) + int(selfProbePeriod/time.Millisecond) - 1) / int(selfProbePeriod/time.Millisecond)
	n = min(max(n, 1), len(held))
	out := map[string][]netip.Addr{}
	for i := range n {
		ad := held[(next+i)%len(held)]
		out[ad.Interface] = append(out[ad.Interface], ad.Prefix.Addr())
	}
	return out, (next + n) % len(held)
}

// conflicts remembers the last rival seen per address, for status.
type conflicts struct {
	mu sync.Mutex // guards m
	m  map[netip.Addr]string
}

func (a *Agent) recordConflict(ip netip.Addr, mac string) {
	a.conflicts.mu.Lock()
	defer a.conflicts.mu.Unlock()
	if a.conflicts.m == nil {
		a.conflicts.m = map[netip.Addr]string{}
	}
	a.conflicts.m[ip] = mac
}
