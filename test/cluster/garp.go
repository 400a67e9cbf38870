package cluster

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/mdlayher/arp"
)

// GARP is a gratuitous ARP frame seen on the wire.
type GARP struct {
	Op  arp.Operation
	MAC string
	At  time.Time
}

// GARPWatcher collects gratuitous ARP (sender IP = target IP = VIP) seen by a host.
type GARPWatcher struct {
	c   *arp.Client
	vip netip.Addr
	out chan GARP
}

// WatchGARP opens an ARP socket on h's eth0; Run fills C until ctx ends.
func WatchGARP(h *lab.Host, vip netip.Addr) (*GARPWatcher, error) {
	w := &GARPWatcher{vip: vip, out: make(chan GARP, 64)}
	err := h.Do(func() error {
		ifi, err := net.InterfaceByName(h.Link)
		if err != nil {
			return err
		}
		w.c, err = arp.Dial(ifi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("watch GARP in %s: %w", h.Name, err)
	}
	return w, nil
}

// C delivers what was seen.
func (w *GARPWatcher) C() <-chan GARP { return w.out }

// Run reads until ctx ends.
func (w *GARPWatcher) Run(ctx context.Context) {
	defer w.c.Close()
	defer close(w.out)
	for ctx.Err() == nil {
		w.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		p, _, err := w.c.Read()
		if err != nil {
			continue
		}
		if p.SenderIP == w.vip && p.TargetIP == w.vip {
			select {
			case w.out <- GARP{Op: p.Operation, MAC: p.SenderHardwareAddr.String(), At: time.Now()}:
			default:
			}
		}
	}
}
