package netbios

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
	"github.com/vishvananda/netlink"
)

// scaleAddr is the i-th of the scale tests' cluster addresses, in 198.19.0.0/16
// (inside the 198.18.0.0/15 benchmarking range).
func scaleAddr(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{198, 19, byte(1 + i/250), byte(1 + i%250)})
}

// fleet is n NetBIOS interfaces on one interface of the lab's node namespace.
type fleet struct {
	conns   []net.PacketConn
	rs      []*Responder
	clients []*Client
	cancel  []context.CancelFunc
	done    []chan error
}

func scaleName(i int) nbns.Name { return nbns.Name{Label: fmt.Sprintf("SRV%04d", i), Suffix: 0x20} }

// addScaleAddrs puts n addresses on the node's n0, as the resource manager would,
// and routes 198.19.0.0/16 from the WINS namespace via the node's own address: one
// neighbour entry each way instead of n (gc_thresh3 is global and 1,024 here).
func (l *sambaLab) addScaleAddrs(t testing.TB, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		l.node.addr(t, "n0", scaleAddr(i).String()+"/16")
	}
	_, dst, _ := net.ParseCIDR("198.19.0.0/16")
	if err := l.wins.h.RouteAdd(&netlink.Route{Dst: dst, Gw: net.ParseIP(labNode)}); err != nil {
		t.Fatalf("ip route add 198.19.0.0/16 via %s in %s: %v", labNode, l.wins.name, err)
	}
}

// attachAll binds and starts a responder on each address, and a WINS client per
// address when wins is valid; it returns when every name is registered.
func attachAll(t testing.TB, ns *testNS, n int, wins netip.AddrPort, mac net.HardwareAddr) *fleet {
	t.Helper()
	f := &fleet{}
	err := ns.do(t, func() error {
		for i := 0; i < n; i++ {
			c, err := Dial(scaleAddr(i))
			if err != nil {
				return err
			}
			f.conns = append(f.conns, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	start := func(fn func(context.Context) error) {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- fn(ctx) }()
		f.cancel, f.done = append(f.cancel, cancel), append(f.done, done)
	}
	for i, c := range f.conns {
		r := NewResponder(ResponderConfig{Conn: c, Addr: scaleAddr(i), Names: []nbns.Name{scaleName(i)}, NodeType: nbns.HNode, MAC: mac})
		f.rs = append(f.rs, r)
		start(r.Run)
	}
	if wins.IsValid() {
		th := NewShared(0) // one per node, as the daemon wires it
		for i, r := range f.rs {
			cl := NewClient(ClientConfig{Servers: []netip.AddrPort{wins}, Endpoints: []Endpoint{r}, Names: []nbns.Name{scaleName(i)}, NodeType: nbns.HNode, Shared: th})
			f.clients = append(f.clients, cl)
		}
		for _, cl := range f.clients {
			start(cl.Run)
		}
		deadline := time.Now().Add(60 * time.Second)
		for _, cl := range f.clients {
			for !allIn(cl, StateRegistered)() {
				if time.Now().After(deadline) {
					t.Fatalf("not every name registered within 60 s: %v", cl.Status())
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	return f
}

// detach stops the clients first (each releases its names), then the responders,
// then closes the sockets: the order of a resource going offline.
func (f *fleet) detach(t testing.TB) {
	t.Helper()
	var wg sync.WaitGroup
	for i := len(f.rs); i < len(f.rs)+len(f.clients); i++ { // the clients' slots follow the responders'

		f.cancel[i]()
		wg.Go(func() {
			if err := <-f.done[i]; err != nil {
				t.Errorf("client: %v", err)
			}
		})
	}
	wg.Wait()
	for i := range f.rs {
		f.cancel[i]()
		if err := <-f.done[i]; err != nil {
			t.Errorf("responder: %v", err)
		}
		f.conns[i].Close()
	}
}

// queryAll sends a node status request to every address from sock, in batches that
// fit the socket's receive buffer, and returns how many answered with their name.
func queryAll(t testing.TB, sock net.PacketConn, n int) int {
	t.Helper()
	const batch = 100
	ok := 0
	buf := make([]byte, 1500)
	for from := 0; from < n; from += batch {
		to := min(from+batch, n)
		for i := from; i < to; i++ {
			b, _ := nbns.NewNodeStatusRequest(uint16(i)).AppendPack(nil)
			if _, err := sock.WriteTo(b, net.UDPAddrFromAddrPort(netip.AddrPortFrom(scaleAddr(i), Port))); err != nil {
				t.Fatal(err)
			}
		}
		for got := from; got < to; got++ {
			sock.SetReadDeadline(time.Now().Add(2 * time.Second))
			k, _, err := sock.ReadFrom(buf)
			if err != nil {
				break
			}
			var m nbns.Message
			if m.Unpack(buf[:k]) == nil && len(m.Answers) == 1 && m.Answers[0].Status != nil &&
				len(m.Answers[0].Status.Names) == 1 && m.Answers[0].Status.Names[0].Label == scaleName(int(m.ID)).Label {
				ok++
			}
		}
	}
	return ok
}

// TestScale1000 (Q142880): 1,000 cluster addresses on one interface, each with its
// NetBIOS interface registered with Samba WINS, all answering node status over the
// veth from the WINS namespace (in batches that fit a socket buffer).
func TestScale1000(t *testing.T) {
	lab := newSambaLab(t)
	lab.startWINSNoHook(t, 30, 60)
	lab.addScaleAddrs(t, 1000)
	f := attachAll(t, lab.node, 1000, netip.AddrPortFrom(netip.MustParseAddr(labWINS), Port), lab.node.mac(t, "n0"))
	var sock net.PacketConn
	if err := lab.wins.do(t, func() (err error) { sock, err = net.ListenPacket("udp4", labWINS+":0"); return err }); err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	if got := queryAll(t, sock, 1000); got != 1000 {
		t.Errorf("%d of 1000 addresses answered node status with their name", got)
	}
	for _, i := range []int{0, 499, 999} {
		out, err := lab.nmblookup(lab.wins, "-U", labWINS, "--recursion", scaleName(i).Label+"#20")
		if err != nil || !strings.Contains(out, scaleAddr(i).String()+" "+scaleName(i).Label+"<20>") {
			t.Errorf("WINS lookup of %v (err %v):\n%s", scaleName(i), err, out)
		}
	}
	f.detach(t)
	out, err := lab.nmblookup(lab.wins, "-U", labWINS, "--recursion", scaleName(999).Label+"#20")
	if err == nil {
		t.Errorf("after detach, %v still resolves:\n%s", scaleName(999), out)
	}
}

// BenchmarkAttach1000 times bringing up 1,000 NetBIOS interfaces (bind, responder,
// registration with Samba WINS acknowledged) once the addresses are up, and taking
// them down with every release answered; it reports memory per interface.
func BenchmarkAttach1000(b *testing.B) {
	lab := newSambaLab(b)
	lab.startWINSNoHook(b, 30, 60)
	lab.addScaleAddrs(b, 1000)
	wins := netip.AddrPortFrom(netip.MustParseAddr(labWINS), Port)
	mac := lab.node.mac(b, "n0")
	var attach, detach time.Duration
	var perIface float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		start := time.Now()
		f := attachAll(b, lab.node, 1000, wins, mac)
		attach += time.Since(start)
		runtime.GC()
		runtime.ReadMemStats(&after)
		perIface = float64(after.HeapInuse+after.StackInuse-before.HeapInuse-before.StackInuse) / 1000
		start = time.Now()
		f.detach(b)
		detach += time.Since(start)
	}
	b.ReportMetric(float64(attach.Milliseconds())/float64(b.N), "ms/attach-1000")
	b.ReportMetric(float64(detach.Milliseconds())/float64(b.N), "ms/detach-1000")
	b.ReportMetric(perIface, "B/interface")
}
