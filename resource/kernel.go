package resource

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ErrNoInterface means a resource names an interface this node does not have.
var ErrNoInterface = errors.New("interface not found")

// kernel is the netlink edge: every call is one `ip` command's worth of work on the
// handle's network namespace.
type kernel struct {
	h *netlink.Handle
}

func (k kernel) link(name string) (netlink.Link, error) {
	l, err := k.h.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if errors.As(err, &nf) {
			return nil, fmt.Errorf("interface %q does not exist on this node (list interfaces with `ip link`; fix the resource's --interface): %w", name, ErrNoInterface)
		}
		return nil, fmt.Errorf("look up interface %q: %w", name, err)
	}
	return l, nil
}

// addrs lists a link's addresses in kernel order; equals `ip addr show dev LINK`.
func (k kernel) addrs(l netlink.Link) ([]KernelAddr, error) {
	list, err := k.h.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	out := make([]KernelAddr, 0, len(list))
	for _, a := range list {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if ip.IsLinkLocalUnicast() {
			continue // the kernel's own fe80:: address; never a cluster address
		}
		bits, _ := a.Mask.Size()
		out = append(out, KernelAddr{
			Prefix:    netip.PrefixFrom(ip, bits),
			Secondary: a.Flags&unix.IFA_F_SECONDARY != 0,
		})
	}
	return out, nil
}

// toNetlink converts at the netlink call only. IPv6 cluster addresses are added with
// NODAD (raft already guarantees exclusivity; conflicts are found by active probing)
// and preferred_lft 0, so they never become the source of the node's own traffic.
//
// A non-zero lifetime becomes valid_lft (and, for IPv4, preferred_lft): the kernel
// removes the address by itself unless it is refreshed in time.
func toNetlink(a Address, lifetime time.Duration) *netlink.Addr {
	p := a.Prefix
	na := &netlink.Addr{IPNet: &net.IPNet{
		IP:   p.Addr().AsSlice(),
		Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
	}}
	valid := 0xFFFFFFFF // INFINITY_LIFE_TIME
	if lifetime > 0 {
		valid = int((lifetime + time.Second - 1) / time.Second)
	}
	if p.Addr().Is6() {
		na.Flags = unix.IFA_F_NODAD
		na.PreferedLft = 0
		na.ValidLft = valid // set (even to infinity) so preferred_lft 0 is sent
	} else if lifetime > 0 {
		na.ValidLft, na.PreferedLft = valid, valid
	}
	return na
}

// add equals `ip addr replace PREFIX dev LINK [valid_lft N preferred_lft N]` (IPv6:
// `... nodad preferred_lft 0`); replace, so the same call refreshes a lifetime.
func (k kernel) add(l netlink.Link, a Address, lifetime time.Duration) error {
	if err := k.h.AddrReplace(l, toNetlink(a, lifetime)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("add %s to %s: %w", a.Prefix, a.Interface, err)
	}
	return nil
}

// del equals `ip addr del PREFIX dev LINK`; an address already gone is no error.
func (k kernel) del(l netlink.Link, a Address) error {
	if err := k.h.AddrDel(l, toNetlink(a, 0)); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return fmt.Errorf("remove %s from %s: %w", a.Prefix, a.Interface, err)
	}
	return nil
}

// routes lists the link's routes in the main and local tables; equals
// `ip route show table all dev LINK` restricted to those two tables.
func (k kernel) routes(l netlink.Link) ([]netlink.Route, error) {
	filter := &netlink.Route{LinkIndex: l.Attrs().Index, Table: unix.RT_TABLE_UNSPEC}
	rs, err := k.h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("list routes of %s: %w", l.Attrs().Name, err)
	}
	return rs, nil
}

// addRoute equals `ip route add ...` for a repaired prefix or local route.
func (k kernel) addRoute(r *netlink.Route) error {
	if err := k.h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("restore route %s: %w", r.Dst, err)
	}
	return nil
}

// writeSysctl writes /proc/sys/NAME in the calling thread's network namespace.
func writeSysctl(name, value string) error {
	p := filepath.Join("/proc/sys", filepath.FromSlash(name))
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("set sysctl %s=%s: %w", name, value, err)
	}
	return nil
}
