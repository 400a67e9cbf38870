package announce

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"
)

// Kernel tests: real packet sockets on a veth pair between two namespaces.
// Addresses come from 198.18.0.0/15 and 2001:2::/48 only.

var (
	vip4 = netip.MustParseAddr("198.18.0.10")
	vip6 = netip.MustParseAddr("2001:2::10")
)

type capturedFrame struct {
	at time.Time
	b  []byte
}

// capture reads frames of one EtherType (unix.ETH_P_ALL: every frame,
// including outgoing ones) arriving on a node's testLink.
type capture struct {
	conn   *packet.Conn
	frames chan capturedFrame
	done   chan struct{}
}

func (n *testNode) capture(t testing.TB, etherType int) *capture {
	t.Helper()
	var conn *packet.Conn
	err := n.do(func() error {
		ifi, err := net.InterfaceByName(testLink)
		if err != nil {
			return err
		}
		conn, err = packet.Listen(ifi, packet.Raw, etherType, nil)
		return err
	})
	if err != nil {
		t.Fatalf("capture on %s in %s: %v", testLink, n.name, err)
	}
	c := &capture{conn: conn, frames: make(chan capturedFrame, 65536), done: make(chan struct{})}
	go c.loop()
	t.Cleanup(func() {
		conn.Close()
		<-c.done
	})
	return c
}

func (c *capture) loop() {
	defer close(c.done)
	for {
		buf := make([]byte, 2048)
		n, _, err := c.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		select {
		case c.frames <- capturedFrame{time.Now(), buf[:n]}:
		default: // the test stopped reading; it will see the frame missing
		}
	}
}

// next returns the next frame for which match is true, failing the test if
// none arrives within timeout.
func (c *capture) next(t testing.TB, timeout time.Duration, what string, match func([]byte) bool) capturedFrame {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case f := <-c.frames:
			if match(f.b) {
				return f
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, timeout)
		}
	}
}

// fromMAC matches Ethernet frames with source mac.
func fromMAC(mac net.HardwareAddr) func([]byte) bool {
	return func(b []byte) bool { return len(b) >= 12 && bytes.Equal(b[6:12], mac) }
}

// runAnnouncer runs an Announcer for testLink in n's namespace until the test
// ends. Run stays on a thread in that namespace, so its socket (and any reopen)
// is there too.
func runAnnouncer(t testing.TB, n *testNode, cfg Config) *Announcer {
	t.Helper()
	a, err := New(testLink, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.do(func() error { return a.Run(ctx) }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run on %s in %s: %v", testLink, n.name, err)
		}
	})
	return a
}

func TestGARPOnTheWire(t *testing.T) {
	a, b := newPair(t)
	capB := b.capture(t, unix.ETH_P_ARP)
	ann := runAnnouncer(t, a, Config{Count: 2, Interval: 100 * time.Millisecond})
	if err := ann.Announce(vip4); err != nil {
		t.Fatal(err)
	}
	var firstAt time.Time
	for round := range 2 {
		for _, op := range []arp.Operation{arp.OperationRequest, arp.OperationReply} {
			f := capB.next(t, 2*time.Second, "gratuitous ARP from "+a.mac.String(), fromMAC(a.mac))
			var eth ethernet.Frame
			var p arp.Packet
			if err := eth.UnmarshalBinary(f.b); err != nil {
				t.Fatal(err)
			}
			if err := p.UnmarshalBinary(eth.Payload); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(eth.Destination, ethernet.Broadcast) || eth.EtherType != ethernet.EtherTypeARP {
				t.Errorf("round %d %s: Ethernet destination %s type %v, want broadcast ARP", round, op, eth.Destination, eth.EtherType)
			}
			if p.Operation != op || !bytes.Equal(p.SenderHardwareAddr, a.mac) || p.SenderIP != vip4 || p.TargetIP != vip4 {
				t.Errorf("round %d: got %s from %s %s for %s, want %s from %s %s for %s",
					round, p.Operation, p.SenderHardwareAddr, p.SenderIP, p.TargetIP, op, a.mac, vip4, vip4)
			}
			if round == 0 && op == arp.OperationRequest {
				firstAt = f.at
			}
			if round == 1 && op == arp.OperationRequest {
				if gap := f.at.Sub(firstAt); gap < 90*time.Millisecond {
					t.Errorf("second round %v after the first, want about the 100ms Interval", gap)
				}
			}
		}
	}
	if st := ann.Stats(); st.Sent != 4 || st.Rounds != 2 || st.SendErrors != 0 {
		t.Errorf("Stats = %+v, want 4 frames in 2 rounds, no errors", st)
	}
}

func TestNAOnTheWire(t *testing.T) {
	a, b := newPair(t)
	capB := b.capture(t, unix.ETH_P_IPV6)
	ann := runAnnouncer(t, a, Config{Count: 1})
	if err := ann.Announce(vip6); err != nil {
		t.Fatal(err)
	}
	f := capB.next(t, 2*time.Second, "neighbour advertisement from "+a.mac.String(), func(b []byte) bool {
		var eth ethernet.Frame
		if !fromMAC(a.mac)(b) || eth.UnmarshalBinary(b) != nil {
			return false
		}
		_, ok := parseNA(eth.Payload)
		return ok
	})
	var eth ethernet.Frame
	if err := eth.UnmarshalBinary(f.b); err != nil {
		t.Fatal(err)
	}
	ip := eth.Payload
	src, _ := netip.AddrFromSlice(ip[8:24])
	dst, _ := netip.AddrFromSlice(ip[24:40])
	if got, want := eth.Destination.String(), "33:33:00:00:00:01"; got != want || src != vip6 || dst != allNodes {
		t.Errorf("NA went %s -> %s (Ethernet %s), want %s -> %s (Ethernet %s)", src, dst, got, vip6, allNodes, want)
	}
	na, _ := parseNA(ip)
	if !na.Override || na.Solicited || na.Router || na.TargetAddress != vip6 {
		t.Errorf("NA override=%v solicited=%v router=%v target=%s, want override, unsolicited, not router, %s",
			na.Override, na.Solicited, na.Router, na.TargetAddress, vip6)
	}
	var tlla net.HardwareAddr
	for _, o := range na.Options {
		if l, ok := o.(*ndp.LinkLayerAddress); ok && l.Direction == ndp.Target {
			tlla = l.Addr
		}
	}
	if !bytes.Equal(tlla, a.mac) {
		t.Errorf("target link-layer address option %v, want %s", tlla, a.mac)
	}
	if got := icmpv6Checksum(ip); got != 0 {
		t.Errorf("ICMPv6 checksum does not verify (sum %#04x)", got)
	}
}

// icmpv6Checksum sums an IPv6 packet's ICMPv6 message with its pseudo header
// (RFC 4443 section 2.3); 0 means the checksum verifies.
func icmpv6Checksum(ip []byte) uint16 {
	n := int(binary.BigEndian.Uint16(ip[4:6]))
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(ip[8:40])
	add([]byte{0, 0, byte(n >> 8), byte(n), 0, 0, 0, protoICMPv6})
	add(ip[40 : 40+n])
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// TestAnnounceUpdatesNeighbours checks the effect that matters: a receiver
// whose neighbour table still points the address at the old holder points it
// at us after the announcement.
func TestAnnounceUpdatesNeighbours(t *testing.T) {
	a, b := newPair(t)
	b.addAddr(t, "198.18.0.2/24")
	b.addAddr(t, "2001:2::2/64")
	old := net.HardwareAddr{0x02, 0, 0, 0, 0x0e, 0x0f}
	for _, addr := range []netip.Addr{vip4, vip6} {
		b.setNeigh(t, addr, old)
		if got := b.neigh(t, addr); !bytes.Equal(got, old) {
			t.Fatalf("%s: neighbour %s is %v before the announcement, want the old holder %s", b.name, addr, got, old)
		}
	}
	ann := runAnnouncer(t, a, Config{Count: 1})
	for _, addr := range []netip.Addr{vip4, vip6} {
		if err := ann.Announce(addr); err != nil {
			t.Fatal(err)
		}
	}
	for _, addr := range []netip.Addr{vip4, vip6} {
		deadline := time.Now().Add(2 * time.Second)
		for {
			got := b.neigh(t, addr)
			if bytes.Equal(got, a.mac) {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: neighbour %s still %v 2 s after the announcement, want %s", b.name, addr, got, a.mac)
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

// probeFrom runs Probe on n's testLink.
func probeFrom(t testing.TB, n *testNode, addr netip.Addr) (net.HardwareAddr, bool, time.Duration) {
	t.Helper()
	var (
		holder net.HardwareAddr
		found  bool
	)
	start := time.Now()
	err := n.do(func() error {
		var err error
		holder, found, err = Probe(context.Background(), testLink, addr, ProbeConfig{})
		return err
	})
	if err != nil {
		t.Fatalf("Probe(%s) from %s: %v", addr, n.name, err)
	}
	return holder, found, time.Since(start)
}

func TestProbe(t *testing.T) {
	for _, tc := range []struct {
		name string
		addr netip.Addr
		pfx  string
	}{
		{"IPv4", vip4, "198.18.0.10/24"},
		{"IPv6", vip6, "2001:2::10/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPair(t)
			holder, found, took := probeFrom(t, a, tc.addr)
			if found {
				t.Errorf("nobody holds %s, Probe found %s", tc.addr, holder)
			}
			if took < DefaultProbeWait || took > DefaultProbeWait+100*time.Millisecond {
				t.Errorf("Probe with nobody answering took %v, want about DefaultProbeWait %v", took, DefaultProbeWait)
			}
			b.addAddr(t, tc.pfx)
			holder, found, took = probeFrom(t, a, tc.addr)
			if !found || !bytes.Equal(holder, b.mac) {
				t.Errorf("%s holds %s: Probe = %v, %v, want %s, true", b.name, tc.addr, holder, found, b.mac)
			}
			if took >= DefaultProbeWait {
				t.Errorf("Probe took %v although %s answers at once", took, b.name)
			}
		})
	}
}

// TestSelfProbe is a holder probing its own address while announcing it, on
// a link that reflects every frame (a looped switch port): our announcements
// come back, and our own kernel answers our probes, both with our MAC. None
// of that may count as a rival.
func TestSelfProbe(t *testing.T) {
	for _, tc := range []struct {
		name      string
		addr      netip.Addr
		pfx       string
		etherType int
	}{
		{"IPv4", vip4, "198.18.0.10/24", unix.ETH_P_ARP},
		{"IPv6", vip6, "2001:2::10/64", unix.ETH_P_IPV6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := newPair(t)
			a.addAddr(t, tc.pfx)
			reflected := reflect(t, b, tc.etherType, a.mac)
			ann := runAnnouncer(t, a, Config{Count: 1000, Interval: 5 * time.Millisecond})
			if err := ann.Announce(tc.addr); err != nil {
				t.Fatal(err)
			}
			holder, found, _ := probeFrom(t, a, tc.addr)
			if found {
				t.Errorf("self-probe of %s found %s (ours is %s)", tc.addr, holder, a.mac)
			}
			ann.Cancel(tc.addr)
			// The test means something only if frames that would count, but
			// for their MAC, did come back.
			frames := reflected()
			counted := 0
			for _, f := range frames {
				if addr, _, ok := heldIn(f, zeroMAC); ok && addr == tc.addr {
					counted++
				}
			}
			if counted == 0 {
				t.Errorf("%d frames reflected, none that would show a holder: the test proves nothing", len(frames))
			}
			t.Logf("%d frames reflected, %d of them naming %s as holder of %s", len(frames), counted, a.mac, tc.addr)
		})
	}
}

// reflect sends every frame of etherType from mac that n receives straight
// back out. The returned function stops it and returns the reflected frames.
func reflect(t testing.TB, n *testNode, etherType int, mac net.HardwareAddr) func() [][]byte {
	t.Helper()
	c := n.capture(t, etherType)
	stop := make(chan struct{})
	done := make(chan [][]byte, 1)
	go func() {
		var out [][]byte
		for {
			select {
			case <-stop:
				done <- out
				return
			case f := <-c.frames:
				if fromMAC(mac)(f.b) {
					c.conn.WriteTo(f.b, &packet.Addr{HardwareAddr: f.b[:6]})
					out = append(out, f.b)
				}
			}
		}
	}()
	var frames [][]byte
	stopped := false
	stopFn := func() [][]byte {
		if !stopped {
			stopped = true
			close(stop)
			frames = <-done
		}
		return frames
	}
	t.Cleanup(func() { stopFn() })
	return stopFn
}

// TestRateLimitOnTheWire announces 200 addresses at 100 frames/s with a burst
// of 10 and counts what arrives on the other side.
func TestRateLimitOnTheWire(t *testing.T) {
	const (
		rate  = 100
		burst = 10
	)
	a, b := newPair(t)
	capB := b.capture(t, unix.ETH_P_ALL)
	ann := runAnnouncer(t, a, Config{Count: 1, Rate: rate, Burst: burst})
	var addrs []netip.Addr
	for i := range 100 {
		addrs = append(addrs, netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}))
		addrs = append(addrs, netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 15: byte(i)}))
	}
	start := time.Now()
	for _, addr := range addrs {
		if err := ann.Announce(addr); err != nil {
			t.Fatal(err)
		}
	}
	frames := 0
	for _, addr := range addrs {
		frames += framesPerRound(addr)
	}
	ours := func(b []byte) bool {
		var eth ethernet.Frame
		if !fromMAC(a.mac)(b) || eth.UnmarshalBinary(b) != nil {
			return false
		}
		if eth.EtherType == ethernet.EtherTypeARP {
			return true
		}
		_, ok := parseNA(eth.Payload)
		return ok
	}
	var at []time.Duration
	for range frames {
		f := capB.next(t, 5*time.Second, "announcement frame", ours)
		at = append(at, f.at.Sub(start))
	}
	// Windows of at least 100 ms must fit the bucket; 2 frames of slack
	// absorb the capture goroutine's scheduling jitter.
	worst := 0.0
	for i := range at {
		for j := i; j < len(at); j++ {
			w := at[j] - at[i]
			if w < 100*time.Millisecond {
				continue
			}
			limit := burst + rate*w.Seconds()
			if n := float64(j - i + 1); n-limit > worst {
				worst = n - limit
			}
			if n := float64(j - i + 1); n > limit+2 {
				t.Fatalf("%v frames between +%v and +%v: limit %.0f at %d/s burst %d", n, at[i], at[j], limit, rate, burst)
			}
		}
	}
	first := at[burst-1]
	last := at[len(at)-1]
	want := time.Duration(float64(frames-burst) / rate * float64(time.Second))
	if last < want-50*time.Millisecond || last > want+500*time.Millisecond {
		t.Errorf("last of %d frames at +%v, want about +%v", frames, last, want)
	}
	if first > 50*time.Millisecond {
		t.Errorf("the first burst of %d frames took until +%v, want at once", burst, first)
	}
	t.Logf("%d frames: burst of %d by +%v, last at +%v (ideal +%v), %.1f frames/s; worst window excess %.2f frames",
		frames, burst, first, last, want, float64(frames-burst)/(last-first).Seconds(), worst)
}

// TestSenderReopens deletes and re-creates the link under a running sender:
// the round in flight fails, the next one goes out on the new link.
func TestSenderReopens(t *testing.T) {
	a, b := newPair(t)
	var s *linkSender
	if err := a.do(func() (err error) { s, err = openLink(testLink); return err }); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l, err := a.h.LinkByName(testLink)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.h.LinkDel(l); err != nil { // takes the peer in b with it
		t.Fatal(err)
	}
	var sendErr error
	a.do(func() error { _, sendErr = s.send(vip4); return nil })
	if sendErr == nil {
		t.Fatal("send on a deleted link succeeded")
	}
	linkPair(t, a, b)
	capB := b.capture(t, unix.ETH_P_ARP)
	var n int
	if err := a.do(func() (err error) { n, err = s.send(vip4); return err }); err != nil {
		t.Fatalf("send after the link came back: %v", err)
	}
	if n != 2 {
		t.Errorf("sent %d frames, want 2", n)
	}
	capB.next(t, 2*time.Second, "gratuitous ARP on the new link", fromMAC(a.mac))
	t.Logf("send on the deleted link failed with: %v", sendErr)
}

// TestProbeAll probes 1,000 IPv4 and 200 IPv6 addresses at once; the other
// side holds every third IPv4 and every other IPv6 address.
func TestProbeAll(t *testing.T) {
	a, b := newPair(t)
	var addrs []netip.Addr
	want := map[netip.Addr]bool{}
	for i := range 1000 {
		addr := netip.AddrFrom4([4]byte{198, 18, 16 + byte(i/250), byte(i % 250)})
		addrs = append(addrs, addr)
		if i%3 == 0 {
			want[addr] = true
			b.addAddr(t, addr.String()+"/32")
		}
	}
	for i := range 200 {
		addr := netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 0, 0, 0, 1, 15: byte(i)})
		addrs = append(addrs, addr)
		if i%2 == 0 {
			want[addr] = true
			b.addAddr(t, addr.String()+"/128")
		}
	}
	var (
		held map[netip.Addr]net.HardwareAddr
		took time.Duration
	)
	err := a.do(func() (err error) {
		start := time.Now()
		held, err = ProbeAll(context.Background(), testLink, addrs, ProbeConfig{})
		took = time.Since(start)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range addrs {
		h, found := held[addr]
		if found != want[addr] || (found && !bytes.Equal(h, b.mac)) {
			t.Errorf("%s: found=%v holder %v, want found=%v holder %s", addr, found, h, want[addr], b.mac)
		}
	}
	t.Logf("probed %d addresses (%d held) in %v", len(addrs), len(want), took)
}

func TestProbeCancel(t *testing.T) {
	a, _ := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	var err error
	start := time.Now()
	a.do(func() error {
		_, _, err = Probe(ctx, testLink, vip4, ProbeConfig{Wait: time.Minute})
		return nil
	})
	if took := time.Since(start); !errors.Is(err, context.DeadlineExceeded) || took > time.Second {
		t.Errorf("Probe with a 20ms context and a 1 min Wait: %v after %v, want context.DeadlineExceeded at once", err, took)
	}
}

func TestProbeErrors(t *testing.T) {
	a, _ := newPair(t)
	for _, tc := range []struct {
		link string
		addr netip.Addr
		want string
	}{
		{"cdann-missing", vip4, "check the resource's interface name"},
		{testLink, netip.MustParseAddr("ff02::1"), "not a unicast address"},
		{"lo", vip4, "need an Ethernet interface"},
	} {
		var err error
		a.do(func() error { _, _, err = Probe(context.Background(), tc.link, tc.addr, ProbeConfig{}); return nil })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Probe(%s, %s) = %v, want an error containing %q", tc.link, tc.addr, err, tc.want)
		}
	}
}
