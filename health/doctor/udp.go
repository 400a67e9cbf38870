package doctor

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Socket is one line of /proc/net/udp or /proc/net/udp6.
type Socket struct {
	Local netip.AddrPort
	UID   uint32
	Inode uint64
}

// maxSockets bounds what ParseSockets reads: a host with more UDP sockets than this
// is not one doctor can describe line by line anyway.
const maxSockets = 1 << 20

// ParseSockets reads the /proc/net/udp or /proc/net/udp6 table (the format of
// net/ipv4/udp.c udp4_format_sock: "sl local_address rem_address st ... uid
// timeout inode ..."). Addresses are 32-bit words in host byte order, in hex.
func ParseSockets(r io.Reader) ([]Socket, error) {
	sc := bufio.NewScanner(r)
	var out []Socket
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if line == 1 && len(f) > 0 && f[0] == "sl" {
			continue // header
		}
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return nil, fmt.Errorf("line %d: %d fields, want at least 10", line, len(f))
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: local_address: %w", line, err)
		}
		uid, err := strconv.ParseUint(f[7], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("line %d: uid %q: %w", line, f[7], err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: inode %q: %w", line, f[9], err)
		}
		if len(out) == maxSockets {
			return nil, fmt.Errorf("more than %d sockets", maxSockets)
		}
		out = append(out, Socket{Local: local, UID: uint32(uid), Inode: inode})
	}
	return out, sc.Err()
}

// parseHexAddrPort parses "0100007F:0089" (IPv4) or 32 hex digits and a port (IPv6).
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q has no port", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("port %q: %w", p, err)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("address %q is not 8 or 32 hex digits", a)
	}
	// The kernel prints each 32-bit word as a host-order integer: turn the
	// big-endian reading of the hex back into the word's bytes in memory.
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(raw[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// ReadSockets reads the UDP sockets (IPv4 and IPv6) of the calling thread's network
// namespace from proc (normally /proc). /proc/thread-self/net, not /proc/net: the
// latter shows the namespace of the process's main thread.
func ReadSockets(proc string) ([]Socket, error) {
	var out []Socket
	for _, name := range []string{"udp", "udp6"} {
		path := filepath.Join(proc, "thread-self", "net", name)
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) && name == "udp6" {
			continue // a kernel without IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("read UDP sockets: %w", err)
		}
		socks, err := ParseSockets(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
		out = append(out, socks...)
	}
	return out, nil
}

// Process is a process that has a socket open.
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"` // /proc/PID/comm
	// Clusterd: the process runs clusterd (its command name starts with
	// "clusterd", or it runs the same executable as this process).
	Clusterd bool `json:"clusterd,omitempty"`
}

func (p Process) String() string { return fmt.Sprintf("pid %d (%s)", p.PID, p.Comm) }

// SocketInode returns the inode of a /proc/PID/fd link target "socket:[12345]".
func SocketInode(target string) (uint64, bool) {
	s, ok := strings.CutPrefix(target, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil
}

// SocketOwners finds which processes hold the sockets with the given inodes by
// reading the links in proc/PID/fd. Processes it may not look into (not root) are
// skipped, so a missing inode means "owner unknown", not "no owner".
func SocketOwners(proc string, inodes map[uint64]bool) (map[uint64]Process, error) {
	out := make(map[uint64]Process)
	if len(inodes) == 0 {
		return out, nil
	}
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self, _ := os.Stat(filepath.Join(proc, "self", "exe"))
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(proc, e.Name(), "fd")
		fds, err := os.ReadDir(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		for _, fd := range fds {
			target, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			ino, ok := SocketInode(target)
			if !ok || !inodes[ino] {
				continue
			}
			if _, seen := out[ino]; seen {
				continue // shared after fork: the first process found names it
			}
			comm, _ := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
			p := Process{PID: pid, Comm: strings.TrimSpace(string(comm))}
			exe, err := os.Stat(filepath.Join(proc, e.Name(), "exe"))
			p.Clusterd = strings.HasPrefix(p.Comm, agentComm) || (err == nil && self != nil && os.SameFile(exe, self))
			out[ino] = p
		}
	}
	return out, nil
}

// ProbeBind binds UDP addr:port with SO_REUSEADDR, as clusterd's NetBIOS interface
// does (netbios.Dial), and closes the socket at once: nil means clusterd could bind
// there now, EADDRINUSE that a socket without SO_REUSEADDR holds the port on addr or
// on the wildcard. IP_FREEBIND lets it test an address this node does not hold yet.
// The socket lives for microseconds; a datagram to addr:port arriving in that
// instant may be delivered to it and lost.
func ProbeBind(ctx context.Context, addr netip.Addr, port uint16) error {
	network := "udp4"
	if addr.Is6() && !addr.Is4In6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1),
				unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_FREEBIND, 1))
		})
		return errors.Join(err, serr)
	}}
	conn, err := lc.ListenPacket(ctx, network, netip.AddrPortFrom(addr.Unmap(), port).String())
	if err != nil {
		return err
	}
	return conn.Close()
}
