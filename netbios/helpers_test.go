package netbios

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
	"github.com/clusterd/clusterd/netbios/winstest"
)

// listen opens a UDP socket on loopback with an ephemeral port.
func listen(t testing.TB) net.PacketConn {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrPort(c net.PacketConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// run starts fn in a goroutine owned by the test: cleanup cancels it, waits, and
// fails the test if fn returned an error. The returned stop does the same earlier
// and hands fn's error to the test instead.
func run(t testing.TB, fn func(context.Context) error) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	var (
		once    sync.Once
		err     error
		checked bool
	)
	wait := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Errorf("goroutine did not stop within 10 s of its context ending")
			}
		})
		return err
	}
	t.Cleanup(func() {
		if err := wait(); err != nil && !checked {
			t.Errorf("Run returned %v", err)
		}
	})
	return func() error {
		checked = true
		return wait()
	}
}

// eventually polls cond every 5 ms until it holds or 5 s pass.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5 s waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// exchange sends req from c to dst and returns the next message c receives, or nil
// if nothing arrives within wait.
func exchange(t testing.TB, c net.PacketConn, dst netip.AddrPort, req *nbns.Message, wait time.Duration) *nbns.Message {
	t.Helper()
	b, err := req.AppendPack(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteTo(b, net.UDPAddrFromAddrPort(dst)); err != nil {
		t.Fatal(err)
	}
	return receive(t, c, wait)
}

func receive(t testing.TB, c net.PacketConn, wait time.Duration) *nbns.Message {
	t.Helper()
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(wait))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		return nil
	}
	var m nbns.Message
	if err := m.Unpack(buf[:n]); err != nil {
		t.Fatalf("undecodable reply %x: %v", buf[:n], err)
	}
	return &m
}

// node is one cluster address on loopback: a running responder.
type node struct {
	*Responder
	conn net.PacketConn
	stop func() error
}

func newNode(t testing.TB, addr string, names ...nbns.Name) *node {
	t.Helper()
	conn := listen(t)
	r := NewResponder(ResponderConfig{
		Conn:     conn,
		Addr:     netip.MustParseAddr(addr),
		Names:    names,
		NodeType: nbns.HNode,
		MAC:      net.HardwareAddr{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01},
	})
	return &node{Responder: r, conn: conn, stop: run(t, r.Run)}
}

// newWINS starts a fake WINS server on loopback.
func newWINS(t testing.TB, cfg winstest.Config) *winstest.Server {
	t.Helper()
	cfg.Conn = listen(t)
	s := winstest.New(cfg)
	run(t, s.Run)
	return s
}

// fakeClock is a Clock whose time moves only when the test says so.
type fakeClock struct {
	mu     sync.Mutex // guards the fields below
	now    time.Time
	timers []fakeTimer
}

type fakeTimer struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.timers = append(f.timers, fakeTimer{f.now.Add(d), ch})
	return ch
}

// Advance moves the time on and fires the timers that are due.
func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	keep := f.timers[:0]
	for _, tm := range f.timers {
		if tm.at.After(f.now) {
			keep = append(keep, tm)
			continue
		}
		tm.ch <- f.now
	}
	f.timers = keep
}

// Waiting counts the timers that fire at or after now+d.
func (f *fakeClock) Waiting(d time.Duration) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, tm := range f.timers {
		if !tm.at.Before(f.now.Add(d)) {
			n++
		}
	}
	return n
}

func udpAddr(ap netip.AddrPort) net.Addr { return net.UDPAddrFromAddrPort(ap) }
