package announce

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

// Frames are whole Ethernet frames (no FCS), ready for an AF_PACKET SOCK_RAW
// socket. Building them is pure so that tests can check them byte by byte.

const (
	ipv6HeaderLen   = 40
	protoICMPv6     = 58  // IPv6 next header value of ICMPv6
	ndpHopLimit     = 255 // RFC 4861: every ND message has hop limit 255
	etherTypeIPv6   = 0x86dd
	etherTypeARP    = 0x0806
	hardwareAddrLen = 6
)

var (
	zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

	// allNodes is ff02::1, where unsolicited Neighbor Advertisements go
	// (RFC 4861 section 7.2.6).
	allNodes = netip.MustParseAddr("ff02::1")
)

// garpFrames returns the two frames of one IPv4 announcement: a gratuitous ARP
// request and a gratuitous ARP reply, both broadcast, both with sender IP =
// target IP = addr. Receivers differ in which one they honour (Linux updates an
// existing entry on either; some older stacks only on the reply), so both go out,
// request first, as CTDB and Linux's own arp_notify do.
func garpFrames(mac net.HardwareAddr, addr netip.Addr) ([][]byte, error) {
	req, err := arp.NewPacket(arp.OperationRequest, mac, addr, zeroMAC, addr)
	if err != nil {
		return nil, fmt.Errorf("build gratuitous ARP request for %s from %s: %w", addr, mac, err)
	}
	rep, err := arp.NewPacket(arp.OperationReply, mac, addr, ethernet.Broadcast, addr)
	if err != nil {
		return nil, fmt.Errorf("build gratuitous ARP reply for %s from %s: %w", addr, mac, err)
	}
	out := make([][]byte, 0, 2)
	for _, p := range []*arp.Packet{req, rep} {
		b, err := arpFrame(p, ethernet.Broadcast)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

// arpProbeFrame returns an RFC 5227 ARP probe for addr: a broadcast request with
// sender IP 0.0.0.0 and target hardware address zero, so that no receiver
// learns anything from it and every holder of addr answers.
func arpProbeFrame(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, netip.IPv4Unspecified(), zeroMAC, addr)
	if err != nil {
		return nil, fmt.Errorf("build ARP probe for %s from %s: %w", addr, mac, err)
	}
	return arpFrame(p, ethernet.Broadcast)
}

func arpFrame(p *arp.Packet, dst net.HardwareAddr) ([]byte, error) {
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal ARP %s for %s: %w", p.Operation, p.TargetIP, err)
	}
	f := ethernet.Frame{
		Destination: dst,
		Source:      p.SenderHardwareAddr,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     pb,
	}
	return f.MarshalBinary()
}

// unsolicitedNAFrame returns the IPv6 announcement of addr: a Neighbor
// Advertisement from addr to all-nodes with Override set, Solicited clear and
// the target link-layer address option carrying mac (RFC 4861 section 7.2.6).
// Override makes receivers replace a cached link-layer address instead of
// merely marking the entry stale.
func unsolicitedNAFrame(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	na := &ndp.NeighborAdvertisement{
		Override:      true,
		TargetAddress: addr,
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: mac}},
	}
	return ndpFrame(mac, addr, allNodes, na)
}

// nsProbeFrame returns a duplicate-address-detection style Neighbor
// Solicitation for addr: from :: to addr's solicited-node multicast group, with
// no source link-layer address option (RFC 4861 section 4.3 forbids it with an
// unspecified source). A holder answers with a Neighbor Advertisement to
// all-nodes (RFC 4861 section 7.2.4).
func nsProbeFrame(mac net.HardwareAddr, addr netip.Addr) ([]byte, error) {
	group, err := ndp.SolicitedNodeMulticast(addr)
	if err != nil {
		return nil, fmt.Errorf("solicited-node group of %s: %w", addr, err)
	}
	return ndpFrame(mac, netip.IPv6Unspecified(), group, &ndp.NeighborSolicitation{TargetAddress: addr})
}

// ndpFrame wraps m in an IPv6 header (hop limit 255, no extension headers) and
// an Ethernet header addressed to dst's multicast MAC (RFC 2464 section 7).
func ndpFrame(mac net.HardwareAddr, src, dst netip.Addr, m ndp.Message) ([]byte, error) {
	body, err := ndp.MarshalMessageChecksum(m, src, dst)
	if err != nil {
		return nil, fmt.Errorf("marshal %s from %s to %s: %w", m.Type(), src, dst, err)
	}
	pkt := make([]byte, ipv6HeaderLen, ipv6HeaderLen+len(body))
	pkt[0] = 6 << 4 // version 6, traffic class and flow label 0
	binary.BigEndian.PutUint16(pkt[4:6], uint16(len(body)))
	pkt[6] = protoICMPv6
	pkt[7] = ndpHopLimit
	s, d := src.As16(), dst.As16()
	copy(pkt[8:24], s[:])
	copy(pkt[24:40], d[:])
	pkt = append(pkt, body...)
	f := ethernet.Frame{
		Destination: multicastMAC(dst),
		Source:      mac,
		EtherType:   ethernet.EtherTypeIPv6,
		Payload:     pkt,
	}
	return f.MarshalBinary()
}

// multicastMAC maps an IPv6 multicast address to its Ethernet group address
// 33:33 followed by the low 32 bits (RFC 2464 section 7).
func multicastMAC(group netip.Addr) net.HardwareAddr {
	g := group.As16()
	return net.HardwareAddr{0x33, 0x33, g[12], g[13], g[14], g[15]}
}

// heldIn reports which address frame shows some station other than own to
// hold, and that station's hardware address. It counts:
//   - ARP: any packet, request or reply, with a sender IP (an answer to a
//     probe, a gratuitous ARP, or the holder resolving someone else);
//   - IPv6: any Neighbor Advertisement (its target link-layer address option
//     names the holder; without one, the Ethernet source does).
//
// Frames whose Ethernet source or advertised address is own are ignored: they
// are our own announcements seen again (a capture of outgoing frames, a
// reflecting switch port), or our own kernel answering, not a rival. Probes
// (sender IP 0.0.0.0, or an NS from ::) show nothing: whoever sent them does
// not hold the address yet.
func heldIn(frame []byte, own net.HardwareAddr) (addr netip.Addr, holder net.HardwareAddr, ok bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(frame); err != nil || bytes.Equal(f.Source, own) {
		return netip.Addr{}, nil, false
	}
	switch f.EtherType {
	case ethernet.EtherTypeARP:
		var p arp.Packet
		if err := p.UnmarshalBinary(f.Payload); err != nil || !p.SenderIP.Is4() || p.SenderIP.IsUnspecified() {
			return netip.Addr{}, nil, false
		}
		addr, holder = p.SenderIP, p.SenderHardwareAddr
	case ethernet.EtherTypeIPv6:
		na, ok := parseNA(f.Payload)
		if !ok {
			return netip.Addr{}, nil, false
		}
		addr, holder = na.TargetAddress, f.Source
		for _, o := range na.Options {
			if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target {
				holder = lla.Addr
			}
		}
	default:
		return netip.Addr{}, nil, false
	}
	if len(holder) == 0 || bytes.Equal(holder, own) {
		return netip.Addr{}, nil, false
	}
	return addr.WithZone(""), append(net.HardwareAddr(nil), holder...), true
}

// parseNA returns the Neighbor Advertisement in an IPv6 packet, applying the
// validity checks of RFC 4861 section 7.1.2 that do not need the checksum: no
// extension headers, hop limit 255, ICMPv6 code 0.
func parseNA(pkt []byte) (*ndp.NeighborAdvertisement, bool) {
	if len(pkt) < ipv6HeaderLen || pkt[0]>>4 != 6 || pkt[6] != protoICMPv6 || pkt[7] != ndpHopLimit {
		return nil, false
	}
	n := int(binary.BigEndian.Uint16(pkt[4:6]))
	body := pkt[ipv6HeaderLen:]
	if n > len(body) {
		return nil, false
	}
	body = body[:n] // drop Ethernet padding
	if len(body) < 2 || body[1] != 0 {
		return nil, false
	}
	m, err := ndp.ParseMessage(body)
	if err != nil {
		return nil, false
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	return na, ok
}
