package announce

import (
	"bytes"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
)

var (
	testMAC   = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0a}
	rivalMAC  = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x0b}
	testAddr4 = netip.MustParseAddr("192.0.2.10")
	testAddr6 = netip.MustParseAddr("2001:2::10")
)

// The expected frames were written out field by field from RFC 826, RFC 5227,
// RFC 4861 and RFC 2464 (checksums computed separately), not produced by this
// package.
const (
	wantGARPRequest = "ffffffffffff02000000000a0806" + "0001080006040001" + "02000000000ac000020a" + "000000000000c000020a" + "000000000000000000000000000000000000"
	wantGARPReply   = "ffffffffffff02000000000a0806" + "0001080006040002" + "02000000000ac000020a" + "ffffffffffffc000020a" + "000000000000000000000000000000000000"
	wantARPProbe    = "ffffffffffff02000000000a0806" + "0001080006040001" + "02000000000a00000000" + "000000000000c000020a" + "000000000000000000000000000000000000"
	wantNA          = "33330000000102000000000a86dd" +
		"6000000000203aff" + "20010002000000000000000000000010" + "ff020000000000000000000000000001" +
		"88001470" + "20000000" + "20010002000000000000000000000010" + "020102000000000a"
	wantNS = "3333ff00001002000000000a86dd" +
		"6000000000183aff" + "00000000000000000000000000000000" + "ff0200000000000000000001ff000010" +
		"87005a85" + "00000000" + "20010002000000000000000000000010"
)

func TestFrames(t *testing.T) {
	garp, err := garpFrames(testMAC, testAddr4)
	if err != nil {
		t.Fatal(err)
	}
	probe, err := arpProbeFrame(testMAC, testAddr4)
	if err != nil {
		t.Fatal(err)
	}
	na, err := unsolicitedNAFrame(testMAC, testAddr6)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := nsProbeFrame(testMAC, testAddr6)
	if err != nil {
		t.Fatal(err)
	}
	if len(garp) != 2 {
		t.Fatalf("garpFrames returned %d frames, want 2 (request, reply)", len(garp))
	}
	for _, tc := range []struct {
		name string
		got  []byte
		want string
	}{
		{"gratuitous ARP request", garp[0], wantGARPRequest},
		{"gratuitous ARP reply", garp[1], wantGARPReply},
		{"ARP probe", probe, wantARPProbe},
		{"unsolicited NA", na, wantNA},
		{"DAD-style NS", ns, wantNS},
	} {
		if got := hex.EncodeToString(tc.got); got != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, got, tc.want)
		}
	}
}

func TestRoundFrames(t *testing.T) {
	for _, addr := range []netip.Addr{testAddr4, testAddr6} {
		fs, err := roundFrames(testMAC, addr)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(fs), framesPerRound(addr); got != want {
			t.Errorf("roundFrames(%s) sent %d frames, framesPerRound says %d", addr, got, want)
		}
	}
}

// frame builds test frames with mdlayher's codecs directly.
func arpTestFrame(t *testing.T, src net.HardwareAddr, op arp.Operation, sha net.HardwareAddr, spa netip.Addr, tpa netip.Addr) []byte {
	t.Helper()
	p, err := arp.NewPacket(op, sha, spa, zeroMAC, tpa)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := p.MarshalBinary()
	f := ethernet.Frame{Destination: ethernet.Broadcast, Source: src, EtherType: ethernet.EtherTypeARP, Payload: pb}
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func naTestFrame(t *testing.T, src net.HardwareAddr, target netip.Addr, tlla net.HardwareAddr, hopLimit byte) []byte {
	t.Helper()
	na := &ndp.NeighborAdvertisement{Override: true, TargetAddress: target}
	if tlla != nil {
		na.Options = []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Target, Addr: tlla}}
	}
	b, err := ndpFrame(src, target, allNodes, na)
	if err != nil {
		t.Fatal(err)
	}
	b[ethernetHeaderLen+7] = hopLimit
	return b
}

const ethernetHeaderLen = 14

func TestHeldIn(t *testing.T) {
	other := netip.MustParseAddr("192.0.2.11")
	ns, _ := nsProbeFrame(rivalMAC, testAddr6)
	for _, tc := range []struct {
		name  string
		frame []byte
		addr  netip.Addr
		want  net.HardwareAddr // nil: not found
	}{
		{"ARP reply from a rival", arpTestFrame(t, rivalMAC, arp.OperationReply, rivalMAC, testAddr4, netip.IPv4Unspecified()), testAddr4, rivalMAC},
		{"gratuitous ARP request from a rival", arpTestFrame(t, rivalMAC, arp.OperationRequest, rivalMAC, testAddr4, testAddr4), testAddr4, rivalMAC},
		{"rival resolving someone else from addr", arpTestFrame(t, rivalMAC, arp.OperationRequest, rivalMAC, testAddr4, other), testAddr4, rivalMAC},
		{"our own gratuitous ARP", arpTestFrame(t, testMAC, arp.OperationReply, testMAC, testAddr4, testAddr4), testAddr4, nil},
		{"our own ARP relayed with another Ethernet source", arpTestFrame(t, rivalMAC, arp.OperationReply, testMAC, testAddr4, testAddr4), testAddr4, nil},
		{"another station's probe for addr", arpTestFrame(t, rivalMAC, arp.OperationRequest, rivalMAC, netip.IPv4Unspecified(), testAddr4), testAddr4, nil},
		{"ARP reply for another address", arpTestFrame(t, rivalMAC, arp.OperationReply, rivalMAC, other, netip.IPv4Unspecified()), testAddr4, nil},
		{"ARP while probing IPv6", arpTestFrame(t, rivalMAC, arp.OperationReply, rivalMAC, testAddr4, testAddr4), testAddr6, nil},
		{"NA from a rival", naTestFrame(t, rivalMAC, testAddr6, rivalMAC, 255), testAddr6, rivalMAC},
		{"NA naming the holder in its option", naTestFrame(t, net.HardwareAddr{2, 0, 0, 0, 0, 0x0c}, testAddr6, rivalMAC, 255), testAddr6, rivalMAC},
		{"NA without target link-layer option", naTestFrame(t, rivalMAC, testAddr6, nil, 255), testAddr6, rivalMAC},
		{"our own NA", naTestFrame(t, testMAC, testAddr6, testMAC, 255), testAddr6, nil},
		{"NA advertising our MAC via another source", naTestFrame(t, rivalMAC, testAddr6, testMAC, 255), testAddr6, nil},
		{"NA with hop limit 64 (routed, invalid)", naTestFrame(t, rivalMAC, testAddr6, rivalMAC, 64), testAddr6, nil},
		{"NA for another address", naTestFrame(t, rivalMAC, netip.MustParseAddr("2001:2::11"), rivalMAC, 255), testAddr6, nil},
		{"NS probe from a rival", ns, testAddr6, nil},
		{"truncated frame", []byte{1, 2, 3}, testAddr4, nil},
		{"empty frame", nil, testAddr6, nil},
	} {
		addr, got, ok := heldIn(tc.frame, testMAC)
		ok = ok && addr == tc.addr
		if !ok {
			got = nil
		}
		if ok != (tc.want != nil) || !bytes.Equal(got, tc.want) {
			t.Errorf("%s: heldIn shows %s held by %v; want %s held by %v", tc.name, addr, got, tc.addr, tc.want)
		}
	}
}

func FuzzHeldIn(f *testing.F) {
	for _, s := range []string{wantGARPRequest, wantGARPReply, wantARPProbe, wantNA, wantNS} {
		b, _ := hex.DecodeString(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		addr, h, ok := heldIn(frame, testMAC)
		if !ok {
			if addr.IsValid() || h != nil {
				t.Fatalf("heldIn(%x) = %s, %v without ok", frame, addr, h)
			}
			return
		}
		if bytes.Equal(h, testMAC) || len(h) == 0 || !addr.IsValid() || addr.IsUnspecified() {
			t.Fatalf("heldIn(%x) = %s held by %v: want a real address and a MAC that is not ours", frame, addr, h)
		}
	})
}
