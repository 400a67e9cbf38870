package netbios

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"golang.org/x/sys/unix"
)

// Port is the NetBIOS name service port (RFC 1002).
const Port = 137

// Causes of a failed Dial (event 1044, Q232910). A *DialError matches one of them
// with errors.Is.
var (
	ErrAddressMissing = errors.New("address is not on any interface")
	ErrPortInUse      = errors.New("port 137 is held exclusively by another socket")
	ErrPermission     = errors.New("permission denied")
)

// DialError says why the NetBIOS interface of an address could not be created and
// what to do about it.
type DialError struct {
	Addr  netip.Addr
	Cause error // ErrAddressMissing, ErrPortInUse, ErrPermission, or nil when unclassified
	Err   error // the system call's error
}

func (e *DialError) Error() string {
	ap := netip.AddrPortFrom(e.Addr, Port)
	switch e.Cause {
	case ErrAddressMissing:
		return fmt.Sprintf("cannot create NetBIOS interface on %v: %v (bind the socket only after the cluster address is up; check `ip -br addr` on this node) (event %d): %v",
			ap, e.Cause, EventInterfaceFailed, e.Err)
	case ErrPortInUse:
		return fmt.Sprintf("cannot create NetBIOS interface on %v: %v (a process bound UDP 137 without SO_REUSEADDR; find it with `ss -ulpn 'sport = :137'` or `clusterd doctor` and stop it or set SO_REUSEADDR; a host nmbd with SO_REUSEADDR coexists) (event %d): %v",
			ap, e.Cause, EventInterfaceFailed, e.Err)
	case ErrPermission:
		return fmt.Sprintf("cannot create NetBIOS interface on %v: %v (port 137 is privileged: run clusterd as root or grant CAP_NET_BIND_SERVICE) (event %d): %v",
			ap, e.Cause, EventInterfaceFailed, e.Err)
	}
	return fmt.Sprintf("cannot create NetBIOS interface on %v (event %d): %v", ap, EventInterfaceFailed, e.Err)
}

// Unwrap lets errors.Is match both the cause and the system call's errno.
func (e *DialError) Unwrap() []error {
	if e.Cause == nil {
		return []error{e.Err}
	}
	return []error{e.Cause, e.Err}
}

// classify maps a bind error to its cause.
func classify(err error) error {
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return ErrAddressMissing
	case errors.Is(err, syscall.EADDRINUSE):
		return ErrPortInUse
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return ErrPermission
	}
	return nil
}

// Dial binds UDP addr:137 with SO_REUSEADDR, so it coexists with a host nmbd bound
// to 0.0.0.0:137 (which also sets it). The socket receives what is sent to addr,
// not subnet broadcasts. Errors are *DialError.
func Dial(addr netip.Addr) (net.PacketConn, error) {
	return dial(addr, Port)
}

// DialBroadcast binds UDP bcast:137 (the subnet's broadcast address) with
// SO_REUSEADDR: the socket a Listener reads B-node broadcasts from, one per subnet
// that has cluster addresses. Errors are *DialError.
func DialBroadcast(bcast netip.Addr) (net.PacketConn, error) {
	return dial(bcast, Port)
}

func dial(addr netip.Addr, port uint16) (net.PacketConn, error) {
	if !addr.Is4() {
		return nil, &DialError{Addr: addr, Err: fmt.Errorf("%v is not an IPv4 address: NetBIOS over TCP/IP is IPv4 only", addr)}
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				// B-node registrations and releases are sent to the subnet broadcast.
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_BROADCAST, 1))
		})
		return errors.Join(err, serr)
	}}
	conn, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(addr, port).String())
	if err != nil {
		return nil, &DialError{Addr: addr, Cause: classify(err), Err: err}
	}
	return conn, nil
}
