package netbios

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// dialHelperEnv makes the test binary, re-executed without privileges by
// TestDialPermission, call Dial once and print the error.
const dialHelperEnv = "CDNBT_DIAL_HELPER"

func TestMain(m *testing.M) {
	if a := os.Getenv(dialHelperEnv); a != "" {
		_, err := Dial(netip.MustParseAddr(a))
		fmt.Printf("permission=%v\n%v\n", errors.Is(err, ErrPermission), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestClassify(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want error
	}{
		{syscall.EADDRNOTAVAIL, ErrAddressMissing},
		{syscall.EADDRINUSE, ErrPortInUse},
		{syscall.EACCES, ErrPermission},
		{syscall.EPERM, ErrPermission},
		{syscall.ENOBUFS, nil},
	} {
		err := &DialError{Addr: netip.MustParseAddr("198.18.0.10"), Cause: classify(&os.SyscallError{Syscall: "bind", Err: tt.err}), Err: tt.err}
		if got := err.Cause; got != tt.want {
			t.Errorf("classify(%v) = %v, want %v", tt.err, got, tt.want)
		}
		if !errors.Is(err, tt.err) {
			t.Errorf("%v does not match its errno %v", err, tt.err)
		}
		if !strings.Contains(err.Error(), "198.18.0.10:137") || !strings.Contains(err.Error(), "event 1044") {
			t.Errorf("message %q does not name the address and event 1044", err)
		}
	}
}

// squat binds addr:137 in the namespace without SO_REUSEADDR, as a careless process would.
func squat(t *testing.T, n *testNS, addr string) {
	t.Helper()
	err := n.do(t, func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		t.Cleanup(func() { unix.Close(fd) })
		return unix.Bind(fd, &unix.SockaddrInet4{Port: Port, Addr: netip.MustParseAddr(addr).As4()})
	})
	if err != nil {
		t.Fatalf("squat on %s:137: %v", addr, err)
	}
}

func TestDial(t *testing.T) {
	n := newNS(t, "dial")
	peer := newNS(t, "peer")
	n.link(t, peer, "eth0", "peer0")
	for _, a := range []string{"198.18.0.2/24", "198.18.0.10/24", "198.18.0.11/24"} {
		n.addr(t, "eth0", a)
	}
	// A host nmbd binds 0.0.0.0:137 with SO_REUSEADDR: we coexist with it.
	var wild net.PacketConn
	if err := n.do(t, func() (err error) { wild, err = dial(netip.IPv4Unspecified(), Port); return err }); err != nil {
		t.Fatalf("wildcard socket with SO_REUSEADDR: %v", err)
	}
	if _, err := n.dial(t, "198.18.0.10"); err != nil {
		t.Fatalf("Dial beside a wildcard SO_REUSEADDR socket: %v", err)
	}
	if _, err := n.dial(t, "198.18.0.10"); err != nil {
		t.Errorf("second Dial of the same address (both SO_REUSEADDR): %v", err)
	}
	wild.Close()
	squat(t, n, "198.18.0.11")
	tests := []struct {
		addr  string
		cause error
		errno syscall.Errno
		says  []string
	}{
		{"198.18.0.11", ErrPortInUse, syscall.EADDRINUSE, []string{"198.18.0.11:137", "held exclusively", "SO_REUSEADDR", "ss -ulpn", "event 1044"}},
		{"198.18.0.12", ErrAddressMissing, syscall.EADDRNOTAVAIL, []string{"198.18.0.12:137", "not on any interface", "ip -br addr", "event 1044"}},
	}
	for _, tt := range tests {
		_, err := n.dial(t, tt.addr)
		if !errors.Is(err, tt.cause) || !errors.Is(err, tt.errno) {
			t.Errorf("Dial(%s) = %v, want %v (%v)", tt.addr, err, tt.cause, tt.errno)
			continue
		}
		var de *DialError
		if !errors.As(err, &de) || de.Addr != netip.MustParseAddr(tt.addr) {
			t.Errorf("Dial(%s) error %T does not carry the address", tt.addr, err)
		}
		for _, s := range tt.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("Dial(%s) message %q does not say %q", tt.addr, err, s)
			}
		}
	}
	if _, err := Dial(netip.MustParseAddr("2001:2::10")); err == nil || !strings.Contains(err.Error(), "IPv4 only") {
		t.Errorf("Dial(IPv6) = %v, want an IPv4-only error", err)
	}
}

// TestDialPermission runs Dial as an unprivileged user (nobody) inside a namespace,
// where binding port 137 needs CAP_NET_BIND_SERVICE.
func TestDialPermission(t *testing.T) {
	n := newNS(t, "perm")
	peer := newNS(t, "peer")
	n.link(t, peer, "eth0", "peer0")
	n.addr(t, "eth0", "198.18.0.10/24")
	// The test binary must be readable by nobody: copy it out of the build cache.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cdnbt-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "netbios.test")
	copyFile(t, self, bin)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), dialHelperEnv+"=198.18.0.10")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var out []byte
	if err := n.do(t, func() (err error) { out, err = cmd.CombinedOutput(); return err }); err != nil {
		t.Fatalf("helper as nobody: %v\n%s", err, out)
	}
	got := string(out)
	for _, s := range []string{"permission=true", "198.18.0.10:137", "CAP_NET_BIND_SERVICE", "event 1044"} {
		if !strings.Contains(got, s) {
			t.Errorf("unprivileged Dial said %q, want it to contain %q", got, s)
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
