package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
)

var (
	macA = net.HardwareAddr{2, 0, 0xc6, 0x12, 0, 0x65}
	macB = net.HardwareAddr{2, 0, 0xc6, 0x12, 0, 0x66}
	vip  = netip.MustParseAddr("192.0.2.10")
	peer = netip.MustParseAddr("192.0.2.2")
)

// arpFrame builds an Ethernet frame carrying an ARP packet.
func arpFrame(t *testing.T, op arp.Operation, mac net.HardwareAddr, sender, target netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, mac, sender, ethernet.Broadcast, target)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	f := &ethernet.Frame{Destination: ethernet.Broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// nbnsFrame builds an Ethernet/IPv4/UDP frame to port 137 with an NBNS header and
// a question for name (15 characters, space padded) with suffix.
func nbnsFrame(src netip.Addr, opcode int, response bool, name string, suffix byte) []byte {
	nb := make([]byte, 12)
	flags := uint16(opcode) << 11
	if response {
		flags |= 0x8000
	}
	binary.BigEndian.PutUint16(nb[2:], flags)
	raw := []byte(name + strings.Repeat(" ", 15-len(name)))
	raw = append(raw, suffix)
	nb = append(nb, 32)
	for _, c := range raw {
		nb = append(nb, 'A'+c>>4, 'A'+c&0xf)
	}
	nb = append(nb, 0)
	udp := make([]byte, 8)
	binary.BigEndian.PutUint16(udp[0:], 137)
	binary.BigEndian.PutUint16(udp[2:], 137)
	ip := make([]byte, 20)
	ip[0], ip[9] = 0x45, 17
	copy(ip[12:], src.AsSlice())
	copy(ip[16:], []byte{192, 0, 2, 1})
	eth := make([]byte, 14)
	copy(eth[6:], macA)
	binary.BigEndian.PutUint16(eth[12:], etherIPv4)
	return append(append(append(eth, ip...), udp...), nb...)
}

// pcapFile writes frames as a little-endian microsecond pcap file.
func pcapFile(frames []frame) []byte {
	b := make([]byte, 24)
	binary.LittleEndian.PutUint32(b, pcapMagicMicro)
	binary.LittleEndian.PutUint32(b[20:], linkEthernet)
	for _, f := range frames {
		h := make([]byte, 16)
		binary.LittleEndian.PutUint32(h, uint32(f.At.Unix()))
		binary.LittleEndian.PutUint32(h[4:], uint32(f.At.Nanosecond()/1000))
		binary.LittleEndian.PutUint32(h[8:], uint32(len(f.Data)))
		binary.LittleEndian.PutUint32(h[12:], uint32(len(f.Data)))
		b = append(append(b, h...), f.Data...)
	}
	return b
}

func TestPcapRoundTrip(t *testing.T) {
	t0 := time.Unix(1795279080, 69977000)
	in := []frame{
		{At: t0, Data: arpFrame(t, arp.OperationRequest, macA, vip, vip)},
		{At: t0.Add(1500 * time.Microsecond), Data: arpFrame(t, arp.OperationReply, macB, vip, peer)},
		{At: t0.Add(3 * time.Millisecond), Data: nbnsFrame(vip, nbnsRelease, false, "NODE0001", 0x20)},
	}
	b := pcapFile(in)
	got, err := parsePcap(append(b, 1, 2, 3)) // a record cut short at the end is dropped
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("parsePcap: got %d frames, want %d", len(got), len(in))
	}
	for i := range in {
		if !got[i].At.Equal(in[i].At) || string(got[i].Data) != string(in[i].Data) {
			t.Errorf("frame %d: got %v %d bytes, want %v %d bytes", i, got[i].At, len(got[i].Data), in[i].At, len(in[i].Data))
		}
	}
	if g, ok := parseGARP(got[0]); !ok || g.MAC != macA.String() || g.IP != vip {
		t.Errorf("parseGARP(gratuitous request): got %+v %v", g, ok)
	}
	if _, ok := parseGARP(got[1]); ok {
		t.Error("parseGARP(reply to a peer): ok, want not gratuitous")
	}
	if _, ok := parseGARP(got[2]); ok {
		t.Error("parseGARP(NBNS frame): ok")
	}
	p, ok := parseNBNS(got[2])
	if want := (nbnsPacket{At: in[2].At, Src: vip, Opcode: nbnsRelease, Name: "NODE0001<20>"}); !ok || p != want {
		t.Errorf("parseNBNS: got %+v %v, want %+v", p, ok, want)
	}
	if _, ok := parseNBNS(got[0]); ok {
		t.Error("parseNBNS(ARP frame): ok")
	}
	if _, err := parsePcap(b[:10]); err == nil {
		t.Error("parsePcap of a short header: no error")
	}
	bad := append([]byte(nil), b...)
	bad[0] = 0
	if _, err := parsePcap(bad); err == nil {
		t.Error("parsePcap with a bad magic: no error")
	}
}

func TestCountNBNS(t *testing.T) {
	t0 := time.Unix(1000, 0)
	other := netip.MustParseAddr("192.0.2.11")
	f := func(ms int, src netip.Addr, op int, resp bool, name string) frame {
		return frame{At: t0.Add(time.Duration(ms) * time.Millisecond), Data: nbnsFrame(src, op, resp, name, 0x20)}
	}
	frames := []frame{
		f(0, vip, nbnsRegistration, false, "NODE0001"), // before since
		f(10, vip, nbnsRelease, false, "NODE0001"),
		f(20, vip, nbnsRelease, false, "NODE0001"), // a repeat
		f(25, vip, nbnsRelease, true, "NODE0001"),  // the WINS server's answer
		f(30, other, nbnsRelease, false, "NODE0002"),
		f(40, vip, nbnsRelease, false, "OTHER"),      // not wanted
		f(50, other, nbnsRefresh, false, "NODE0002"), // other opcode
	}
	want := map[string]bool{"192.0.2.10 NODE0001<20>": true, "192.0.2.11 NODE0002<20>": true}
	got := countNBNS(frames, want, t0.Add(5*time.Millisecond), nbnsRelease)
	if got.packets != 3 || len(got.first) != 2 || !got.last.Equal(t0.Add(30*time.Millisecond)) {
		t.Errorf("countNBNS: got %d packets, %d names, complete at %v; want 3, 2, +30ms", got.packets, len(got.first), got.last.Sub(t0))
	}
}

func TestGARPRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms float64) time.Time { return t0.Add(time.Duration(ms * float64(time.Millisecond))) }
	var gs []garp
	for i := range 10 { // 10 frames from A within 9 ms
		gs = append(gs, garp{At: at(float64(i)), MAC: macA.String()})
	}
	for i := range 6 { // 6 frames from B, 50 ms apart: at most 2 in any 100 ms
		gs = append(gs, garp{At: at(float64(i * 50)), MAC: macB.String()})
	}
	gs = append(gs, garp{At: at(99.9), MAC: macA.String()}, garp{At: at(100), MAC: macA.String()})
	got := garpRate(gs, 100*time.Millisecond)
	// A: 0..9 ms and 99.9 ms lie within 100 ms (11 frames); 100 ms is 100 ms after 0.
	if got.MaxWindow != 11 || got.MaxMAC != macA.String() || got.Frames != 18 || got.Senders != 2 || !got.Last.Equal(at(250)) {
		t.Errorf("garpRate: got %+v, want 11 by %s of 18 frames from 2 senders, last at +250ms", got, macA)
	}
	if got := garpRate(nil, time.Second); got.MaxWindow != 0 || got.Frames != 0 {
		t.Errorf("garpRate(nil): got %+v", got)
	}
}
