package resource

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/resource/sockopt"
)

// DeletionWatch reports address and route deletions in a network namespace: the
// drift (an address or a prefix route removed by hand) a reconciler repairs at
// once. Additions are dropped in the kernel by a socket filter: a lifetime refresh
// re-adds every held address (1,000 RTM_NEWADDR every 10 s), and a netlink library
// subscription decoded each of them only to ignore it, a wake-up for nothing.
type DeletionWatch struct {
	f *os.File
}

// deletionTypes are the netlink message types the filter passes.
var deletionTypes = []uint16{unix.RTM_DELADDR, unix.RTM_DELROUTE}

// deletionFilter is a classic BPF program over a netlink message: accept it whole
// if its nlmsg_type (a host-order u16 at offset 4; BPF loads big-endian) is a
// deletion, drop it otherwise.
func deletionFilter() []unix.SockFilter {
	prog := []unix.SockFilter{{Code: unix.BPF_LD | unix.BPF_H | unix.BPF_ABS, K: 4}}
	for i, t := range deletionTypes {
		var b [2]byte
		binary.NativeEndian.PutUint16(b[:], t)
		toAccept := uint8(len(deletionTypes) - i) // skip the remaining tests and the drop
		prog = append(prog, unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K,
			Jt: toAccept, K: uint32(binary.BigEndian.Uint16(b[:]))})
	}
	return append(prog,
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0},
		unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: 0xffffffff})
}

// NewDeletionWatch subscribes to IPv4 and IPv6 address and route changes in the
// network namespace of the calling thread.
func NewDeletionWatch() (*DeletionWatch, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open a netlink socket for address and route events: %w (needs CAP_NET_ADMIN)", err)
	}
	fail := func(what string, err error) (*DeletionWatch, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("address and route events: %s: %w", what, err)
	}
	// 8 MiB: removals of 1,000 addresses at once arrive as thousands of messages.
	if err := sockopt.ReadBuffer(fd, 8<<20); err != nil {
		return fail("set the receive buffer", err)
	}
	prog := deletionFilter()
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER,
		&unix.SockFprog{Len: uint16(len(prog)), Filter: &prog[0]}); err != nil {
		return fail("attach the deletion filter", err)
	}
	groups := uint32(unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		return fail("subscribe", err)
	}
	return &DeletionWatch{f: os.NewFile(uintptr(fd), "netlink-deletions")}, nil
}

// Run calls onDelete for every batch of deletions read until ctx ends, and closes
// the socket. It returns an error when the subscription overflowed (ENOBUFS: events
// were lost) or failed: the caller resyncs and subscribes again.
func (w *DeletionWatch) Run(ctx context.Context, onDelete func()) error {
	stop := context.AfterFunc(ctx, func() { w.f.Close() })
	defer func() {
		if stop() {
			w.f.Close()
		}
	}()
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, unix.ENOBUFS):
			return fmt.Errorf("address and route events overflowed the receive buffer (events lost): %w", err)
		case err != nil:
			return fmt.Errorf("read address and route events: %w", err)
		case n > 0:
			onDelete()
		}
	}
}
