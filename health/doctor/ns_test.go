package doctor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNS is a throwaway network namespace "cddoc-PID-N" with a veth pair
// eth0/peer0, 198.18.0.1/24 and 198.18.0.10/24 on eth0.
type testNS struct {
	name string
	ns   netns.NsHandle
}

var nsSeq atomic.Int64

const (
	nodeAddr    = "198.18.0.1"
	clusterAddr = "198.18.0.10"
)

// newNS creates the namespace and deletes it when the test ends. It needs root;
// CI runs as root.
func newNS(t *testing.T) *testNS {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("kernel tests need root to create network namespaces (run them as root, as CI does)")
	}
	name := fmt.Sprintf("cddoc-%d-%d", os.Getpid(), nsSeq.Add(1))
	var ns netns.NsHandle
	err := onThread(func() error {
		var err error
		ns, err = netns.NewNamed(name) // enters it; onThread moves back
		return err
	})
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: "peer0"}); err != nil {
		t.Fatalf("ip link add eth0 type veth peer name peer0: %v", err)
	}
	for _, n := range []string{"lo", "eth0", "peer0"} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{nodeAddr + "/24", clusterAddr + "/24"} {
		addr, _ := netlink.ParseAddr(a)
		if err := h.AddrAdd(eth0, addr); err != nil {
			t.Fatalf("ip addr add %s dev eth0: %v", a, err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		l, err := h.LinkByName("eth0")
		if err == nil && l.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("eth0 in %s has no carrier after 5 s", name)
		}
	}
	return &testNS{name: name, ns: ns}
}

// onThread runs fn on a locked thread and puts the thread back into this
// process's namespace afterwards; a thread that cannot be put back stays locked,
// so the runtime discards it.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, err)
			return // stays locked
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// do runs fn on a thread inside the namespace.
func (n *testNS) do(t *testing.T, fn func() error) {
	t.Helper()
	err := onThread(func() error {
		if err := netns.Set(n.ns); err != nil {
			return err
		}
		return fn()
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dial connects from inside the namespace: each dial enters it on its own thread.
func (n *testNS) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := onThread(func() error {
		if err := netns.Set(n.ns); err != nil {
			return err
		}
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func (n *testNS) sysctl(t *testing.T, name, value string) {
	t.Helper()
	n.do(t, func() error {
		return os.WriteFile(filepath.Join("/proc/sys", strings.ReplaceAll(name, ".", "/")), []byte(value), 0o644)
	})
}

// squat starts a process "squatter" that binds UDP addr in the namespace.
func (n *testNS) squat(t *testing.T, addr string, reuse bool) int {
	t.Helper()
	return n.squatAs(t, copyTestBinary(t, "squatter"), addr, reuse)
}

// squatAs is squat running exe.
func (n *testNS) squatAs(t *testing.T, exe, addr string, reuse bool) int {
	t.Helper()
	r := "0"
	if reuse {
		r = "1"
	}
	cmd, line := helper(t, exe, "CDDOC_HELPER=squat", "CDDOC_NS=/run/netns/"+n.name, "CDDOC_ADDR="+addr, "CDDOC_REUSE="+r)
	if line != "ready\n" {
		t.Fatalf("squatter on %s said %q", addr, line)
	}
	return cmd.Process.Pid
}

// TestKernelUDP137 plants processes on UDP 137 in a namespace and checks that
// doctor, run in that namespace, finds and names them, tells an exclusive socket
// from a shared one, and sees nothing from another namespace.
func TestKernelUDP137(t *testing.T) {
	cluster := []netip.Addr{netip.MustParseAddr(clusterAddr)}
	tests := []struct {
		name      string
		bind      string // "" plants nothing
		reuse     bool
		self      bool // the planted process runs doctor's own executable: clusterd
		addrs     []netip.Addr
		elsewhere bool // run doctor in a second, empty namespace
		want      Severity
		wantText  []string
	}{
		{"exclusive on the cluster address", clusterAddr + ":137", false, false, cluster, false, Fail,
			[]string{"UDP 137 on " + clusterAddr + ": PID on " + clusterAddr + " holds it without SO_REUSEADDR", "event 1044", "fix: stop PID"}},
		{"exclusive on the wildcard", "0.0.0.0:137", false, false, cluster, false, Fail,
			[]string{"PID on 0.0.0.0 holds it without SO_REUSEADDR"}},
		{"exclusive on the wildcard, addresses unknown", "0.0.0.0:137", false, false, nil, false, Fail,
			[]string{"UDP 137 on the wildcard", "PID on 0.0.0.0"}},
		{"shared on the wildcard", "0.0.0.0:137", true, false, cluster, false, Info,
			[]string{"PID on 0.0.0.0 shares the port"}},
		{"shared on the address itself", clusterAddr + ":137", true, false, cluster, false, Warn,
			[]string{"shared with PID on " + clusterAddr}},
		{"another address", nodeAddr + ":137", false, false, cluster, false, OK, []string{"no other process"}},
		{"nothing planted", "", false, false, cluster, false, OK, []string{"no other process"}},
		{"clusterd's own socket", clusterAddr + ":137", true, true, cluster, false, OK,
			[]string{"held by clusterd's own NetBIOS interface (PID)"}},
		{"another namespace", clusterAddr + ":137", false, false, cluster, true, OK, []string{"no other process"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNS(t)
			pid := 0
			switch {
			case tt.bind == "":
			case tt.self:
				pid = n.squatAs(t, os.Args[0], tt.bind, tt.reuse)
			default:
				pid = n.squat(t, tt.bind, tt.reuse)
			}
			where := n
			if tt.elsewhere {
				where = newNS(t)
			}
			var fs []Finding
			where.do(t, func() error {
				fs = UDP137(context.Background(), "/proc", tt.addrs)
				return nil
			})
			if len(fs) == 0 {
				t.Fatalf("UDP137 found nothing to say")
			}
			f := fs[0]
			text := f.Message + " fix: " + f.Fix
			if f.Severity != tt.want {
				t.Errorf("severity %v, want %v: %s", f.Severity, tt.want, text)
			}
			proc := fmt.Sprintf("pid %d (%s)", pid, comm(t, pid))
			for _, w := range tt.wantText {
				if w = strings.ReplaceAll(w, "PID", proc); !strings.Contains(text, w) {
					t.Errorf("finding %q does not contain %q", text, w)
				}
			}
		})
	}
}

func comm(t *testing.T, pid int) string {
	if pid == 0 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestKernelProbeBind checks the probe against the kernel: it binds an address the
// namespace does not have (IP_FREEBIND), and reports EADDRINUSE for a port held
// without SO_REUSEADDR.
func TestKernelProbeBind(t *testing.T) {
	n := newNS(t)
	n.squat(t, clusterAddr+":137", false)
	n.do(t, func() error {
		if err := ProbeBind(context.Background(), netip.MustParseAddr("198.18.0.99"), ntPort); err != nil {
			t.Errorf("ProbeBind(198.18.0.99, not on any interface) = %v, want nil", err)
		}
		if err := ProbeBind(context.Background(), netip.MustParseAddr(clusterAddr), ntPort); !errors.Is(err, syscall.EADDRINUSE) {
			t.Errorf("ProbeBind(%s held exclusively) = %v, want EADDRINUSE", clusterAddr, err)
		}
		return nil
	})
}

// TestKernelRun runs every check in a namespace with planted problems: a missing
// interface, arp_ignore=8 on one that exists, ip_nonlocal_bind=1.
func TestKernelRun(t *testing.T) {
	n := newNS(t)
	n.sysctl(t, "net.ipv4.conf.eth0.arp_ignore", "8")
	n.sysctl(t, "net.ipv4.ip_nonlocal_bind", "1")
	var fs []Finding
	n.do(t, func() error {
		fs = Run(context.Background(), Options{
			Interfaces:  []Interface{{Name: "eth0", By: []string{"resource web"}}, {Name: "eth9", By: []string{"resource db"}}},
			Addresses:   []netip.Addr{netip.MustParseAddr(clusterAddr)},
			ClockWindow: 20 * time.Millisecond,
		})
		return nil
	})
	want := []struct {
		subject string
		sev     Severity
		text    string
	}{
		{"CAP_NET_ADMIN", OK, "present"},
		{"eth0", OK, "exists and is up"},
		{"eth9", Fail, "interface eth9 does not exist on this node (named by resource db)"},
		{"eth9", Fail, "fix: create or rename the interface (existing: eth0, lo, peer0)"},
		{"net.ipv4.conf.eth0.arp_ignore", Fail, "arp_ignore=8 on eth0"},
		{"net.ipv4.conf.eth0.arp_ignore", Fail, "fix: sysctl -w net.ipv4.conf.eth0.arp_ignore=1"},
		{"net.ipv4.ip_nonlocal_bind", Warn, "fix: sysctl -w net.ipv4.ip_nonlocal_bind=0"},
		{"net.ipv4.conf.eth0.promote_secondaries", Info, "promote_secondaries=0 on eth0"},
		{clusterAddr, OK, "no other process"},
		{"steps", OK, "no wall-clock step"},
	}
	for _, w := range want {
		f := find(t, fs, w.subject)
		if text := f.Message + " fix: " + f.Fix; f.Severity != w.sev || !strings.Contains(text, w.text) {
			t.Errorf("%s: %v %q, want %v containing %q", w.subject, f.Severity, text, w.sev, w.text)
		}
	}
	if s := Summarize(fs); s.Blocking != 2 {
		t.Errorf("Summarize = %+v, want 2 blocking (eth9, arp_ignore)\n%+v", s, fs)
	}
}

// TestKernelPeers connects from inside a namespace to a listening and a closed
// port there.
func TestKernelPeers(t *testing.T) {
	n := newNS(t)
	var ln net.Listener
	n.do(t, func() error {
		var err error
		ln, err = net.Listen("tcp", nodeAddr+":7401")
		return err
	})
	defer ln.Close()
	fs := Peers(context.Background(), []Endpoint{
		{Node: "n2", Kind: "raft", Addr: nodeAddr + ":7401", State: "up"},
		{Node: "n3", Kind: "raft", Addr: nodeAddr + ":7403", State: "up"},
	}, n.dial, time.Second)
	if fs[0].Severity != OK {
		t.Errorf("listening peer: %+v, want ok", fs[0])
	}
	if fs[1].Severity != Fail || !strings.Contains(fs[1].Message, "connection refused") || !strings.Contains(fs[1].Fix, "allow TCP 7403 (raft) and UDP 7404 (leases)") {
		t.Errorf("closed peer: %+v, want a failure naming the refusal and the ports", fs[1])
	}
}

// TestKernelCapabilities runs the capability check in a process whose bounding
// set lacks CAP_NET_RAW.
func TestKernelCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("this test needs root (CAP_SETPCAP) to drop a capability; CI runs as root")
	}
	_, line := helper(t, os.Args[0], "CDDOC_HELPER=capdrop")
	var fs []Finding
	if err := json.Unmarshal([]byte(line), &fs); err != nil {
		t.Fatalf("helper printed %q: %v", line, err)
	}
	got := map[string]Severity{}
	for _, f := range fs {
		got[f.Subject] = f.Severity
	}
	want := map[string]Severity{"CAP_NET_ADMIN": OK, "CAP_NET_RAW": Fail, "CAP_NET_BIND_SERVICE": OK}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("capabilities without CAP_NET_RAW: %v, want %v", got, want)
	}
}
