package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/mdlayher/arp"
)

// Prober asks "who has VIP?" by ARP from the client namespace every Interval and
// records which MAC answers, so an outage is measured from the client's side and
// only replies from a given holder count. Two different MACs answering the same
// round means two holders.
type Prober struct {
	VIP      netip.Addr
	Interval time.Duration

	c *arp.Client

	mu      sync.Mutex // guards the fields below
	replies []Reply
	round   int
}

// Reply is one ARP reply seen by the prober.
type Reply struct {
	At    time.Time
	Round int // the request round it answered (the latest sent)
	MAC   string
}

// NewProber opens an ARP socket on the client's eth0.
func NewProber(client *lab.Host, vip netip.Addr, interval time.Duration) (*Prober, error) {
	p := &Prober{VIP: vip, Interval: interval}
	err := client.Do(func() error {
		ifi, err := net.InterfaceByName(client.Link)
		if err != nil {
			return err
		}
		p.c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("prober: open ARP socket in %s: %w", client.Name, err)
	}
	return p, nil
}

// Run probes until ctx ends, then closes the socket.
func (p *Prober) Run(ctx context.Context) error {
	defer p.c.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			p.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
			pkt, _, err := p.c.Read()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
				continue
			}
			if pkt.Operation != arp.OperationReply || pkt.SenderIP != p.VIP {
				continue
			}
			p.mu.Lock()
			p.replies = append(p.replies, Reply{At: time.Now(), Round: p.round, MAC: pkt.SenderHardwareAddr.String()})
			p.mu.Unlock()
		}
	}()
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		p.mu.Lock()
		p.round++
		p.mu.Unlock()
		p.c.Request(p.VIP)
		select {
		case <-ctx.Done():
			<-done
			return nil
		case <-t.C:
		}
	}
}

// Replies returns what was seen so far.
func (p *Prober) Replies() []Reply {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Reply(nil), p.replies...)
}

// Outage is the client-observed outage ended by the first reply from newMAC at or
// after since: the time from the last reply by any other MAC before it (or since,
// when the old holder was already silent) to it. ok is false if newMAC never answered.
func Outage(replies []Reply, since time.Time, newMAC string) (time.Duration, bool) {
	var last time.Time
	for _, r := range replies {
		if r.At.Before(since) || r.MAC != newMAC {
			if r.MAC != newMAC {
				last = r.At
			}
			continue
		}
		start := since
		if last.After(since) || (!last.IsZero() && since.Sub(last) < 50*time.Millisecond) {
			start = last
		}
		return r.At.Sub(start), true
	}
	return 0, false
}

// DoubleRounds counts request rounds answered by more than one MAC: two holders.
func DoubleRounds(replies []Reply) int {
	macs := map[int]map[string]bool{}
	for _, r := range replies {
		if macs[r.Round] == nil {
			macs[r.Round] = map[string]bool{}
		}
		macs[r.Round][r.MAC] = true
	}
	n := 0
	for _, m := range macs {
		if len(m) > 1 {
			n++
		}
	}
	return n
}

// Median returns the median of ds (0 for none).
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}
