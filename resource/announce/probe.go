package announce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/packet"
)

// Probe asks the link ifname whether another station holds addr, RFC 5227
// style: it sends cfg.Count ARP probes (sender IP 0.0.0.0), or for IPv6
// Neighbor Solicitations from :: to addr's solicited-node group, cfg.Interval
// apart, and listens for up to cfg.Wait from the first one. It returns the
// hardware address of the first station that shows it holds addr (an ARP
// packet with sender IP addr, or a Neighbor Advertisement for addr) and
// found=true, or found=false once the wait is over. Frames from the
// interface's own MAC never count, so a holder can probe its own addresses
// while announcing them: only a rival answers. Probe neither needs nor uses an
// address on ifname.
//
// It is used before taking over an address from a holder that may still be
// alive, and periodically by holders to find conflicts (event 1049). An error
// means the probe could not be made (no such interface, no CAP_NET_RAW) or ctx
// ended; it never means "in use".
func Probe(ctx context.Context, ifname string, addr netip.Addr, cfg ProbeConfig) (holder net.HardwareAddr, found bool, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, false, err
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() || addr.IsUnspecified() || addr.IsMulticast() || addr.IsLoopback() {
		return nil, false, fmt.Errorf("probe %s on %s: not a unicast address", addr, ifname)
	}
	etherType := etherTypeARP
	if addr.Is6() {
		etherType = etherTypeIPv6
	}
	ifi, conn, err := listen(ifname, etherType)
	if err != nil {
		return nil, false, fmt.Errorf("probe %s: %w", addr, err)
	}
	defer conn.Close()
	var frame []byte
	if addr.Is4() {
		frame, err = arpProbeFrame(ifi.HardwareAddr, addr)
	} else {
		frame, err = nsProbeFrame(ifi.HardwareAddr, addr)
	}
	if err != nil {
		return nil, false, err
	}
	holder, found, err = probeOn(ctx, conn, frame, ifi.HardwareAddr, addr, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("probe %s on %s: %w", addr, ifname, err)
	}
	return holder, found, nil
}

// probeOn runs the probe schedule on an open socket: probe frames at 0,
// Interval, 2*Interval..., reading answers in between, until an answer or
// Wait after the start.
func probeOn(ctx context.Context, conn net.PacketConn, probe []byte, own net.HardwareAddr, addr netip.Addr, cfg ProbeConfig) (net.HardwareAddr, bool, error) {
	// A cancelled ctx interrupts a blocked read at once.
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	dst := &packet.Addr{HardwareAddr: net.HardwareAddr(probe[:hardwareAddrLen])}
	buf := make([]byte, 9216) // any Ethernet frame, jumbo included
	start := time.Now()
	end := start.Add(cfg.Wait)
	nextProbe, sent := start, 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, false, err
		}
		now := time.Now()
		if sent < cfg.Count && !now.Before(nextProbe) {
			if _, err := conn.WriteTo(probe, dst); err != nil {
				return nil, false, fmt.Errorf("send probe %d of %d: %w", sent+1, cfg.Count, err)
			}
			sent++
			nextProbe = nextProbe.Add(cfg.Interval)
			continue
		}
		deadline := end
		if sent < cfg.Count && nextProbe.Before(deadline) {
			deadline = nextProbe
		}
		if sent >= cfg.Count && !now.Before(end) {
			return nil, false, nil
		}
		if err := conn.SetReadDeadline(deadline); err != nil {
			return nil, false, err
		}
		n, _, err := conn.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // time for the next probe, the end, or ctx is done
		}
		if err != nil {
			return nil, false, fmt.Errorf("read answers: %w", err)
		}
		if h, ok := holderIn(buf[:n], addr, own); ok {
			return h, true, nil
		}
	}
}
