// Package sockopt sets socket options the daemon's sockets share.
package sockopt

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// ReadBuffer sets fd's receive buffer to n bytes: with SO_RCVBUFFORCE, past
// net.core.rmem_max (needs CAP_NET_ADMIN, which the agent has), else with SO_RCVBUF
// as far as rmem_max allows. Bursts (claim sets in parts, thousands of address
// events, probe answers) overflow the default 208 KB.
func ReadBuffer(fd, n int) error {
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); err == nil {
		return nil
	}
	return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, n)
}

// ConnReadBuffer is ReadBuffer for a connection's socket.
func ConnReadBuffer(c syscall.Conn, n int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = ReadBuffer(int(fd), n) }); err != nil {
		return err
	}
	return serr
}
