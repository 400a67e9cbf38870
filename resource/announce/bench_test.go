package announce

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is the user+system CPU this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkAnnounce1000 announces 1,000 addresses on a veth in a namespace
// (nobody captures on the other side) and reports wire rate and CPU:
//   - unlimited: rate limit out of the way, one round each: what the sender can do;
//   - defaults: Count, Interval, Rate, Burst as shipped, until all three rounds are out.
func BenchmarkAnnounce1000(b *testing.B) {
	const n = 1000
	v4 := make([]netip.Addr, n)
	v6 := make([]netip.Addr, n)
	for i := range n {
		v4[i] = netip.AddrFrom4([4]byte{198, 18, 1 + byte(i/250), byte(i % 250)})
		v6[i] = netip.AddrFrom16([16]byte{0x20, 0x01, 0, 2, 14: byte(i >> 8), 15: byte(i)})
	}
	for _, bc := range []struct {
		name  string
		cfg   Config
		addrs []netip.Addr
		poll  time.Duration // how often the benchmark looks whether all rounds are out; its own CPU counts too
	}{
		{"unlimited/IPv4", Config{Count: 1, Rate: 1e9, Burst: 1 << 30}, v4, time.Millisecond},
		{"unlimited/IPv6", Config{Count: 1, Rate: 1e9, Burst: 1 << 30}, v6, time.Millisecond},
		{"defaults/IPv4", Config{}, v4, 50 * time.Millisecond},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, _ := newPair(b)
			ann := runAnnouncerUnlocked(b, a, bc.cfg)
			count := bc.cfg.Count
			if count == 0 {
				count = DefaultCount
			}
			var wall, cpu time.Duration
			var frames uint64
			for b.Loop() {
				before := ann.Stats()
				cpu0, start := cpuTime(b), time.Now()
				for _, addr := range bc.addrs {
					if err := ann.Announce(addr); err != nil {
						b.Fatal(err)
					}
				}
				want := before.Rounds + before.SendErrors + uint64(count*len(bc.addrs))
				deadline := time.Now().Add(time.Minute)
				for st := ann.Stats(); st.Rounds+st.SendErrors < want; st = ann.Stats() {
					if time.Now().After(deadline) {
						b.Fatalf("after a minute: %+v, want %d rounds", st, want)
					}
					time.Sleep(bc.poll)
				}
				wall += time.Since(start)
				cpu += cpuTime(b) - cpu0
				st := ann.Stats()
				frames += st.Sent - before.Sent
				if st.SendErrors != before.SendErrors {
					b.Fatalf("%d send errors", st.SendErrors-before.SendErrors)
				}
			}
			b.ReportMetric(float64(frames)/wall.Seconds(), "frames/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*len(bc.addrs)*count), "cpu-µs/round")
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/1000addr")
		})
	}
}

// nsSender is a linkSender opened in a test namespace that never reopens: a
// reopen would run in whatever namespace the calling thread is in.
type nsSender struct{ *linkSender }

func (s nsSender) send(addr netip.Addr) (int, error) {
	if s.conn == nil {
		return 0, errors.New("sender failed before; not reopening outside the test namespace")
	}
	return s.linkSender.send(addr)
}

// runAnnouncerUnlocked is runAnnouncer with Run on an ordinary goroutine, as
// in the daemon (which lives in one namespace), rather than one locked to an
// OS thread: waking a locked goroutine costs a thread handoff every time.
func runAnnouncerUnlocked(b *testing.B, n *testNode, cfg Config) *Announcer {
	b.Helper()
	a, err := New(testLink, cfg)
	if err != nil {
		b.Fatal(err)
	}
	var s *linkSender
	if err := n.do(func() (err error) { s, err = openLink(testLink); return err }); err != nil {
		b.Fatal(err)
	}
	a.open = func() (sender, error) { return nsSender{s}, nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	b.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	})
	return a
}

// BenchmarkProbe measures one Probe when the other side holds the address
// (it returns on the first answer) and when nobody does (it waits the whole
// DefaultProbeWait).
func BenchmarkProbe(b *testing.B) {
	for _, bc := range []struct {
		name string
		addr netip.Addr
		pfx  string
	}{
		{"held/IPv4", vip4, "198.18.0.10/24"},
		{"held/IPv6", vip6, "2001:2::10/64"},
		{"free/IPv4", vip4, ""},
	} {
		b.Run(bc.name, func(b *testing.B) {
			a, peer := newPair(b)
			if bc.pfx != "" {
				peer.addAddr(b, bc.pfx)
			}
			err := a.do(func() error {
				for b.Loop() {
					_, found, err := Probe(context.Background(), testLink, bc.addr, ProbeConfig{})
					if err != nil {
						return err
					}
					if found != (bc.pfx != "") {
						b.Fatalf("Probe found = %v", found)
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		})
	}
}
