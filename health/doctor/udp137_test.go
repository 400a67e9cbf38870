package doctor

import (
	"fmt"
	"net/netip"
	"strings"
	"syscall"
	"testing"
)

func TestOverlaps(t *testing.T) {
	a := netip.MustParseAddr("192.0.2.10")
	tests := []struct {
		sock string
		addr netip.Addr
		want bool
	}{
		{"192.0.2.10:137", a, true},
		{"0.0.0.0:137", a, true},
		{"[::]:137", a, true}, // may be dual-stack
		{"[::ffff:192.0.2.10]:137", a, true},
		{"192.0.2.11:137", a, false},
		{"192.0.2.10:138", a, false},
		{"[2001:db8::1]:137", a, false},
		{"[::ffff:192.0.2.11]:137", a, false},
		{"192.0.2.11:137", wildcard, true},
		{"[2001:db8::1]:137", wildcard, false},
		{"[::]:137", wildcard, true},
	}
	for _, tt := range tests {
		if got := overlaps(netip.MustParseAddrPort(tt.sock), tt.addr); got != tt.want {
			t.Errorf("overlaps(%s, %v) = %v, want %v", tt.sock, tt.addr, got, tt.want)
		}
	}
}

func TestUDP137Judgement(t *testing.T) {
	const (
		clusterAddr = "192.0.2.10"
		otherAddr   = "192.0.2.50"
	)
	sock := func(ap string, inode uint64) Socket {
		return Socket{Local: netip.MustParseAddrPort(ap), Inode: inode}
	}
	owners := map[uint64]Process{1: {PID: 4242, Comm: "nmbd"}, 2: {PID: 77, Comm: "clusterd", Clusterd: true}, 3: {PID: 900, Comm: "squat"}}
	inUse := &net137Error{syscall.EADDRINUSE}
	tests := []struct {
		name      string
		addrs     []string
		socks     []Socket
		probe     error
		want      []Severity // one per target, then one per stray
		wantProbe []bool
		wantText  []string // in the first finding's message or fix
	}{
		{"free", []string{clusterAddr}, nil, nil, []Severity{OK}, []bool{false}, []string{"no other process"}},
		{"other port only", []string{clusterAddr}, []Socket{sock("0.0.0.0:138", 1)}, nil, []Severity{OK}, []bool{false}, nil},
		{"clusterd's own", []string{clusterAddr}, []Socket{sock(clusterAddr+":137", 2)}, nil, []Severity{OK}, []bool{false}, []string{"clusterd's own", "pid 77"}},
		{"nmbd on the wildcard shares", []string{clusterAddr}, []Socket{sock("0.0.0.0:137", 1), sock(clusterAddr+":137", 2)}, nil,
			[]Severity{Info}, []bool{true}, []string{"pid 4242 (nmbd) on 0.0.0.0 shares"}},
		{"exclusive on the address", []string{clusterAddr}, []Socket{sock(clusterAddr+":137", 3)}, inUse,
			[]Severity{Fail}, []bool{true}, []string{"pid 900 (squat) on " + clusterAddr + " holds it without SO_REUSEADDR", "event 1044", "stop pid 900 (squat)"}},
		{"exclusive on the wildcard", []string{clusterAddr}, []Socket{sock("0.0.0.0:137", 3)}, inUse,
			[]Severity{Fail}, []bool{true}, []string{"pid 900 (squat) on 0.0.0.0"}},
		{"two candidates", []string{clusterAddr}, []Socket{sock("0.0.0.0:137", 1), sock(clusterAddr+":137", 3)}, inUse,
			[]Severity{Fail}, []bool{true}, []string{"one of pid 4242 (nmbd) on 0.0.0.0; pid 900 (squat) on " + clusterAddr}},
		{"sharing the address itself", []string{clusterAddr}, []Socket{sock(clusterAddr+":137", 1)}, nil,
			[]Severity{Warn}, []bool{true}, []string{"queries may reach that process"}},
		{"owner unknown", []string{clusterAddr}, []Socket{sock("0.0.0.0:137", 9)}, inUse,
			[]Severity{Fail}, []bool{true}, []string{"owner unknown: run doctor as root"}},
		{"cannot test", []string{clusterAddr}, []Socket{sock("0.0.0.0:137", 1)}, &net137Error{syscall.EACCES},
			[]Severity{Warn}, []bool{true}, []string{"may block", "run doctor as root"}},
		{"other address does not matter", []string{clusterAddr}, []Socket{sock(otherAddr+":137", 3)}, nil, []Severity{OK}, []bool{false}, nil},
		{"ipv6 cluster address only: wildcard target", []string{"2001:db8::10"}, nil, nil, []Severity{OK}, []bool{false}, []string{"the wildcard"}},
		{"unknown addresses, wildcard exclusive", nil, []Socket{sock("0.0.0.0:137", 3)}, inUse,
			[]Severity{Fail}, []bool{true}, []string{"the wildcard", "pid 900 (squat)"}},
		{"unknown addresses, specific socket", nil, []Socket{sock(otherAddr+":137", 3)}, nil,
			[]Severity{OK, Info}, []bool{false}, []string{"no other process"}},
		{"unknown addresses, ambiguous", nil, []Socket{sock("0.0.0.0:137", 1), sock(otherAddr+":137", 3)}, inUse,
			[]Severity{Warn, Info}, []bool{true}, []string{"may be blocked", "perhaps pid 4242 (nmbd)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addrs []netip.Addr
			for _, a := range tt.addrs {
				addrs = append(addrs, netip.MustParseAddr(a))
			}
			targets, stray := planUDP137(addrs, tt.socks, owners)
			var got []Finding
			var probed []bool
			for _, tg := range targets {
				var perr error
				if tg.needsProbe() {
					perr = tt.probe
				}
				probed = append(probed, tg.needsProbe())
				got = append(got, judgeUDP137(tg, perr))
			}
			for _, h := range stray {
				got = append(got, strayFinding(h))
			}
			var sev []Severity
			for _, f := range got {
				sev = append(sev, f.Severity)
			}
			if fmt.Sprint(sev) != fmt.Sprint(tt.want) || fmt.Sprint(probed) != fmt.Sprint(tt.wantProbe) {
				t.Fatalf("addrs %v, sockets %v: severities %v (probed %v), want %v (probed %v)\n%+v", tt.addrs, tt.socks, sev, probed, tt.want, tt.wantProbe, got)
			}
			text := got[0].Message + " | " + got[0].Fix
			for _, w := range tt.wantText {
				if !strings.Contains(text, w) {
					t.Errorf("finding %q does not contain %q", text, w)
				}
			}
			if got[0].Severity >= Warn && got[0].Fix == "" {
				t.Errorf("%v finding without a fix: %q", got[0].Severity, got[0].Message)
			}
		})
	}
}

// net137Error wraps an errno the way net.ListenPacket's *net.OpError does.
type net137Error struct{ errno syscall.Errno }

func (e *net137Error) Error() string { return "listen udp4 192.0.2.10:137: bind: " + e.errno.Error() }
func (e *net137Error) Unwrap() error { return e.errno }
