package announce

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// fakeSender records rounds instead of sending them.
type fakeSender struct {
	start time.Time
	fail  func(addr netip.Addr) error // nil: every send succeeds

	mu     sync.Mutex // guards the fields below
	rounds []sentRound
	closed bool
}

type sentRound struct {
	at   time.Duration // since start
	addr netip.Addr
}

func (f *fakeSender) send(addr netip.Addr) (int, error) {
	if f.fail != nil {
		if err := f.fail(addr); err != nil {
			return 0, err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rounds = append(f.rounds, sentRound{time.Since(f.start), addr})
	return framesPerRound(addr), nil
}

func (f *fakeSender) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

func (f *fakeSender) sent() []sentRound {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]sentRound(nil), f.rounds...)
}

// startFake runs an Announcer over a fakeSender and returns a function that
// stops it and checks that Run returned nil and closed its sender.
func startFake(t *testing.T, cfg Config, fs *fakeSender) (*Announcer, func()) {
	t.Helper()
	a, err := New("fake0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	fs.start = time.Now()
	a.open = func() (sender, error) { return fs, nil }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return a, func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run returned %v after cancel, want nil", err)
		}
		if fs.mu.Lock(); !fs.closed {
			t.Error("Run returned without closing its sender")
		}
		fs.mu.Unlock()
	}
}

func addrs(rs []sentRound) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(r.addr.String())
	}
	return b.String()
}

func mustAnnounce(t *testing.T, a *Announcer, addr netip.Addr) {
	t.Helper()
	if err := a.Announce(addr); err != nil {
		t.Fatal(err)
	}
}

func TestAnnouncerOrderAndDedupe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		a, stop := startFake(t, Config{Count: 1}, fs)
		defer stop()
		for _, i := range []int{5, 1, 3, 1, 5} { // 1 and 5 twice
			mustAnnounce(t, a, addr4(i))
		}
		mustAnnounce(t, a, netip.MustParseAddr("::ffff:192.0.2.3")) // same as 192.0.2.3
		synctest.Wait()
		got := fs.sent()
		if want := "192.0.2.5 192.0.2.1 192.0.2.3"; addrs(got) != want {
			t.Errorf("sent %q, want %q (Announce order, each once)", addrs(got), want)
		}
		for _, r := range got {
			if r.at != 0 {
				t.Errorf("first round of %s at +%v, want at once", r.addr, r.at)
			}
		}
	})
}

func TestAnnouncerRejectsNonUnicast(t *testing.T) {
	a, err := New("fake0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"0.0.0.0", "::", "224.0.0.1", "ff02::1", "127.0.0.1", "::1"} {
		if err := a.Announce(netip.MustParseAddr(s)); err == nil {
			t.Errorf("Announce(%s) = nil, want an error", s)
		}
	}
	if err := a.Announce(netip.Addr{}); err == nil {
		t.Error("Announce(invalid) = nil, want an error")
	}
}

func TestAnnouncerRepeatsAndSpacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		a, stop := startFake(t, Config{}, fs) // defaults: 3 rounds, 1.1 s apart
		defer stop()
		mustAnnounce(t, a, addr4(1))
		time.Sleep(500 * time.Millisecond)
		mustAnnounce(t, a, testAddr6)
		time.Sleep(time.Minute)
		var got []string
		for _, r := range fs.sent() {
			got = append(got, fmt.Sprintf("%v %s", r.at, r.addr))
		}
		want := []string{
			"0s 192.0.2.1", "500ms 2001:2::10", "1.1s 192.0.2.1", "1.6s 2001:2::10", "2.2s 192.0.2.1", "2.7s 2001:2::10",
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rounds:\n got %v\nwant %v", got, want)
		}
		st := a.Stats()
		if st.Rounds != 6 || st.Sent != 3*2+3*1 || st.Scheduled != 0 {
			t.Errorf("Stats = %+v, want 6 rounds, 9 frames, none scheduled", st)
		}
	})
}

func TestAnnouncerRefresh(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		a, stop := startFake(t, Config{Count: 2, Interval: time.Second, Refresh: time.Minute}, fs)
		defer stop()
		mustAnnounce(t, a, addr4(1))
		time.Sleep(3*time.Minute + time.Second)
		synctest.Wait() // let Run send what is due at this very instant
		var got []time.Duration
		for _, r := range fs.sent() {
			got = append(got, r.at)
		}
		want := []time.Duration{0, time.Second, time.Minute + time.Second, 2*time.Minute + time.Second, 3*time.Minute + time.Second}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rounds at %v, want %v", got, want)
		}
		a.Cancel(addr4(1))
		time.Sleep(time.Hour)
		if n := len(fs.sent()); n != len(want) {
			t.Errorf("%d rounds after Cancel, want none (had %d)", n-len(want), len(want))
		}
	})
}

func TestAnnouncerCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		fs := &fakeSender{}
		a, stop := startFake(t, Config{Count: 3, Interval: time.Second, Rate: 1, Burst: 2}, fs)
		defer stop()
		// Rate 1 frame/s, burst 2: .1 goes out at once, .2 waits 2 s.
		mustAnnounce(t, a, addr4(1))
		mustAnnounce(t, a, addr4(2))
		synctest.Wait()
		a.Cancel(addr4(2)) // waiting for its first round
		a.Cancel(addr4(1)) // waiting for a repeat
		if a.Scheduled(addr4(1)) || a.Scheduled(addr4(2)) {
			t.Error("Scheduled after Cancel = true")
		}
		time.Sleep(time.Hour)
		if got, want := addrs(fs.sent()), "192.0.2.1"; got != want {
			t.Errorf("sent %q, want %q (nothing after Cancel)", got, want)
		}
		// Announced again after a release: a new takeover, announced again.
		mustAnnounce(t, a, addr4(2))
		time.Sleep(time.Hour)
		if got, want := addrs(fs.sent()), "192.0.2.1 192.0.2.2 192.0.2.2 192.0.2.2"; got != want {
			t.Errorf("sent %q, want %q", got, want)
		}
	})
}

func TestAnnouncerRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			n     = 1000
			rate  = 100 // frames/s
			burst = 10
		)
		fs := &fakeSender{}
		a, stop := startFake(t, Config{Count: 2, Interval: 1100 * time.Millisecond, Rate: rate, Burst: burst}, fs)
		defer stop()
		for i := range n {
			mustAnnounce(t, a, netip.AddrFrom4([4]byte{192, 0, 2 + byte(i/250), byte(i % 250)}))
		}
		time.Sleep(time.Hour)
		got := fs.sent()
		if len(got) != 2*n {
			t.Fatalf("sent %d rounds, want %d", len(got), 2*n)
		}
		// Every window of frames must fit the bucket: frames in (t, t+w] <= burst + rate*w.
		for i := range got {
			for j := i; j < len(got); j++ {
				w := got[j].at - got[i].at
				frames := 2 * (j - i + 1)
				if limit := burst + int(rate*w.Seconds()+1e-9); frames > limit {
					t.Fatalf("%d frames between +%v and +%v, limit %d (rate %d/s burst %d)", frames, got[i].at, got[j].at, limit, rate, burst)
				}
				if w > time.Second {
					break
				}
			}
		}
		// First rounds, in order, before any repeat, although repeats fell due
		// long before the last first round.
		for i := range n {
			if got[i].addr != got[n+i].addr {
				t.Fatalf("round %d is %s and round %d is %s: want all first rounds in order, then the repeats in the same order", i, got[i].addr, n+i, got[n+i].addr)
			}
		}
		last := got[len(got)-1].at
		if want := time.Duration(float64(2*2*n-burst) / rate * float64(time.Second)); last < want-time.Millisecond || last > want+50*time.Millisecond {
			t.Errorf("last round at +%v, want about +%v (%d frames at %d/s after a burst of %d)", last, want, 2*2*n, rate, burst)
		}
		if st := a.Stats(); st.RateLimited < 2*n-burst/2 {
			t.Errorf("RateLimited = %d, want at least %d", st.RateLimited, 2*n-burst/2)
		}
	})
}

func TestAnnouncerBeforeSend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu      sync.Mutex
			checked []string
		)
		lost := errors.New("lease expired")
		veto := addr4(2)
		fs := &fakeSender{}
		cfg := Config{Count: 3, Interval: time.Second, BeforeSend: func(addr netip.Addr) error {
			mu.Lock()
			defer mu.Unlock()
			checked = append(checked, addr.String())
			if addr == veto && len(checked) > 3 { // .2 passes its first check, fails its second
				return lost
			}
			return nil
		}}
		a, stop := startFake(t, cfg, fs)
		defer stop()
		for i := 1; i <= 3; i++ {
			mustAnnounce(t, a, addr4(i))
		}
		time.Sleep(time.Hour)
		if got, want := addrs(fs.sent()), "192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.1 192.0.2.3 192.0.2.1 192.0.2.3"; got != want {
			t.Errorf("sent %q, want %q", got, want)
		}
		mu.Lock()
		if got, want := fmt.Sprint(checked), "[192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.1 192.0.2.2 192.0.2.3 192.0.2.1 192.0.2.3]"; got != want {
			t.Errorf("BeforeSend saw %s, want %s (one check per round, none after the veto)", got, want)
		}
		mu.Unlock()
		if st := a.Stats(); st.DroppedByCheck != 1 || st.Rounds != 7 || a.Scheduled(veto) {
			t.Errorf("Stats = %+v, Scheduled(%s) = %v; want 1 dropped, 7 rounds, not scheduled", st, veto, a.Scheduled(veto))
		}
	})
}

func TestAnnouncerSendErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		down := errors.New("network is down")
		fs := &fakeSender{fail: func(addr netip.Addr) error {
			if addr == addr4(1) {
				return down
			}
			return nil
		}}
		a, stop := startFake(t, Config{Count: 2, Interval: time.Second}, fs)
		defer stop()
		mustAnnounce(t, a, addr4(1))
		mustAnnounce(t, a, addr4(2))
		time.Sleep(time.Hour)
		if got, want := addrs(fs.sent()), "192.0.2.2 192.0.2.2"; got != want {
			t.Errorf("sent %q, want %q", got, want)
		}
		if st := a.Stats(); st.SendErrors != 2 || st.Rounds != 2 || st.Scheduled != 0 {
			t.Errorf("Stats = %+v, want 2 send errors, 2 rounds, none scheduled", st)
		}
	})
}

func TestAnnouncerRunErrors(t *testing.T) {
	a, err := New("fake0", Config{})
	if err != nil {
		t.Fatal(err)
	}
	refused := errors.New("open packet socket on fake0: operation not permitted")
	a.open = func() (sender, error) { return nil, refused }
	if err := a.Run(context.Background()); !errors.Is(err, refused) {
		t.Errorf("Run with a failing open = %v, want %v", err, refused)
	}
	if err := a.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Errorf("second Run = %v, want an error saying Run was called twice", err)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Count: -1}, "Count -1"},
		{Config{Interval: -time.Second}, "Interval -1s"},
		{Config{Refresh: -time.Second}, "Refresh -1s"},
		{Config{Rate: -5}, "Rate -5"},
		{Config{Burst: 1}, "Burst 1"},
	} {
		_, err := New("eth9", tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "eth9") {
			t.Errorf("New(%+v) = %v, want an error naming %q and the link", tc.cfg, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg  ProbeConfig
		want string
	}{
		{ProbeConfig{Count: -1}, "Count -1"},
		{ProbeConfig{Interval: -1}, "Interval -1ns"},
		{ProbeConfig{Count: 3, Interval: 20 * time.Millisecond, Wait: 30 * time.Millisecond}, "at least 40ms"},
	} {
		if _, err := tc.cfg.withDefaults(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ProbeConfig %+v: %v, want an error containing %q", tc.cfg, err, tc.want)
		}
	}
}

// TestCancelWaitsForSendInFlight checks the promise of Cancel: once it
// returns, no frame for the address leaves, not even one that Run had already
// picked. It uses real time because a goroutine waiting on a mutex is not
// "durably blocked" for testing/synctest.
func TestCancelWaitsForSendInFlight(t *testing.T) {
	inSend := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	fs := &fakeSender{fail: func(netip.Addr) error {
		once.Do(func() { close(inSend); <-release })
		return nil
	}}
	a, stop := startFake(t, Config{Count: 1}, fs)
	defer stop()
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	defer unblock() // before stop, which waits for Run
	mustAnnounce(t, a, addr4(1))
	<-inSend // Run has picked 192.0.2.1 and is inside send
	cancelled := make(chan struct{})
	go func() { a.Cancel(addr4(1)); close(cancelled) }()
	select {
	case <-cancelled:
		t.Fatal("Cancel returned while a round for the address was being sent")
	case <-time.After(50 * time.Millisecond):
	}
	unblock()
	<-cancelled
	if got := addrs(fs.sent()); got != "192.0.2.1" {
		t.Errorf("sent %q, want the one round that was in flight", got)
	}
}
