package cluster

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
)

func TestAnswerOf(t *testing.T) {
	self := netip.MustParseAddr("192.0.2.2")
	asked := netip.MustParseAddr("192.0.2.10")
	other := netip.MustParseAddr("192.0.2.11")
	macA := net.HardwareAddr{2, 0, 0, 0, 0, 0xa}
	macB := net.HardwareAddr{2, 0, 0, 0, 0, 0xb}
	want := map[netip.Addr]bool{asked: true}
	onlyA := func(mac string) bool { return mac == macA.String() }
	pkt := func(op arp.Operation, sender netip.Addr, mac net.HardwareAddr, target netip.Addr) *arp.Packet {
		return &arp.Packet{Operation: op, SenderHardwareAddr: mac, SenderIP: sender, TargetHardwareAddr: macB, TargetIP: target}
	}
	for _, tc := range []struct {
		name   string
		p      *arp.Packet
		accept func(string) bool
		ok     bool
	}{
		{"reply to us", pkt(arp.OperationReply, asked, macA, self), nil, true},
		{"reply by an accepted MAC", pkt(arp.OperationReply, asked, macA, self), onlyA, true},
		{"reply by a MAC not accepted", pkt(arp.OperationReply, asked, macB, self), onlyA, false},
		{"reply for an address not asked", pkt(arp.OperationReply, other, macA, self), nil, false},
		{"gratuitous reply (target = sender)", pkt(arp.OperationReply, asked, macA, asked), nil, false},
		{"request", pkt(arp.OperationRequest, asked, macA, self), nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ip, mac, ok := answerOf(tc.p, self, want, tc.accept)
			if ok != tc.ok || (ok && (ip != asked || mac != macA.String())) {
				t.Errorf("answerOf(%+v): got %v %q %v, want ok=%v (%v %v)", tc.p, ip, mac, ok, tc.ok, asked, macA)
			}
		})
	}
}

func TestAddrRange(t *testing.T) {
	for _, tc := range []struct {
		first string
		n     int
		want  []string
	}{
		{"198.18.1.1", 3, []string{"198.18.1.1", "198.18.1.2", "198.18.1.3"}},
		{"198.18.1.253", 3, []string{"198.18.1.253", "198.18.1.254", "198.18.2.1"}},
		{"198.18.1.0", 1, []string{"198.18.1.1"}},
		{"255.255.255.254", 5, []string{"255.255.255.254"}},
	} {
		var got []string
		for _, a := range AddrRange(netip.MustParseAddr(tc.first), tc.n) {
			got = append(got, a.String())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("AddrRange(%s, %d): got %v, want %v", tc.first, tc.n, got, tc.want)
		}
	}
}

// TestSweepKernel puts 1,200 addresses on a node (more than gc_thresh3 = 1,024
// neighbour entries) and sweeps them from the client: every one answers with the
// node's MAC, none leaves a neighbour entry in the client, and addresses nobody holds
// are reported missing when the sweep's context ends.
func TestSweepKernel(t *testing.T) {
	l := lab.New(t, lab.Options{Nodes: 1, Client: true})
	n1 := l.Node(1)
	ips := AddrRange(netip.MustParseAddr("198.18.1.1"), 1200)
	nh, err := n1.Handle()
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	link, err := nh.LinkByName(n1.Link)
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range ips {
		if err := nh.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip.AsSlice(), Mask: net.CIDRMask(16, 32)}}); err != nil {
			t.Fatalf("add %s on %s: %v", ip, n1.Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	got, err := ARPSweep{}.Sweep(ctx, l.Client(), ips, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d addresses answered in %v", len(got), time.Since(start))
	if by := ByMAC(got); len(got) != len(ips) || by[n1.MAC.String()] != len(ips) {
		t.Errorf("answers: got %d (by MAC %v), want %d all by %s", len(got), by, len(ips), n1.MAC)
	}
	if l := Latest(got); l.Before(start) || l.After(time.Now()) {
		t.Errorf("latest answer at %v, outside the sweep [%v, now]", l, start)
	}
	out, err := l.Client().Run(ctx, "ip", "-4", "neigh", "show")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(string(out))) / 4; n > 2 {
		t.Errorf("the client has %d neighbour entries after the sweep, want at most 2:\n%s", n, out)
	}

	// An address nobody holds, and answers from a MAC that is not accepted.
	nobody := netip.MustParseAddr("198.18.200.1")
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	got, err = ARPSweep{}.Sweep(short, l.Client(), []netip.Addr{ips[0], nobody, ips[1]}, func(mac string) bool { return mac == n1.MAC.String() })
	if !errors.Is(err, ErrUnanswered) || len(got) != 2 {
		t.Errorf("sweep with %s that nobody holds: got %d answers and %v, want 2 and ErrUnanswered", nobody, len(got), err)
	}
	short3, cancel3 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel3()
	got, err = ARPSweep{}.Sweep(short3, l.Client(), ips[:10], func(mac string) bool { return mac != n1.MAC.String() })
	if !errors.Is(err, ErrUnanswered) || len(got) != 0 {
		t.Errorf("sweep accepting only other MACs: got %d answers and %v, want none and ErrUnanswered", len(got), err)
	}
}
