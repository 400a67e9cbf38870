package resource

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DriftKind says what the read-back after a batch found wrong.
type DriftKind int

const (
	// AddressMissing: a cluster address this node should hold is not on its interface
	// (removed by hand, or an add that did not take). Repaired by adding it again.
	AddressMissing DriftKind = iota + 1
	// PrefixRouteMissing: the subnet route of a cluster address is gone. Repaired.
	PrefixRouteMissing
	// LocalRouteMissing: the local-table route of a cluster address is gone. Repaired.
	LocalRouteMissing
	// OtherAddressLost: an address clusterd does not manage vanished during the
	// batch. Never expected (promote_secondaries and the removal order prevent it);
	// reported, not repaired, since it is not clusterd's to add.
	OtherAddressLost
)

func (k DriftKind) String() string {
	switch k {
	case AddressMissing:
		return "address missing"
	case PrefixRouteMissing:
		return "prefix route missing"
	case LocalRouteMissing:
		return "local route missing"
	case OtherAddressLost:
		return "other address lost"
	}
	return fmt.Sprintf("drift(%d)", int(k))
}

// Drift is one difference between the plan and the kernel.
type Drift struct {
	Kind    DriftKind
	Address Address      // the address concerned
	Route   netip.Prefix // the missing route's destination, for route drift
}

func (d Drift) String() string {
	if d.Route.IsValid() {
		return fmt.Sprintf("%s: %s (route %s)", d.Kind, d.Address, d.Route)
	}
	return fmt.Sprintf("%s: %s", d.Kind, d.Address)
}

// routeKey is the part of a route the check compares.
type routeKey struct {
	dst   netip.Prefix
	local bool // table local, type local; otherwise a main-table unicast route
}

// linkView is one interface as read back: its addresses and route keys.
type linkView struct {
	addrs  []KernelAddr
	routes map[routeKey]bool
}

// findDrift is the pure comparison behind the read-back. held are the cluster
// addresses the link should carry now; others are the addresses not managed by
// clusterd that the link carried before the batch.
func findDrift(v linkView, held, others []Address) []Drift {
	present := make(map[netip.Prefix]bool, len(v.addrs))
	for _, ka := range v.addrs {
		present[ka.Prefix] = true
	}
	var out []Drift
	for _, a := range others {
		if !present[a.Prefix] {
			out = append(out, Drift{Kind: OtherAddressLost, Address: a})
		}
	}
	for _, a := range held {
		if !present[a.Prefix] {
			out = append(out, Drift{Kind: AddressMissing, Address: a})
			continue
		}
		host := netip.PrefixFrom(a.Prefix.Addr(), a.Prefix.Addr().BitLen())
		if !v.routes[routeKey{dst: host, local: true}] {
			out = append(out, Drift{Kind: LocalRouteMissing, Address: a, Route: host})
		}
		if a.Prefix.Bits() < a.Prefix.Addr().BitLen() && !v.routes[routeKey{dst: subnet(a.Prefix)}] {
			out = append(out, Drift{Kind: PrefixRouteMissing, Address: a, Route: subnet(a.Prefix)})
		}
	}
	return out
}

func routeKeys(rs []netlink.Route) map[routeKey]bool {
	out := make(map[routeKey]bool, len(rs))
	for _, r := range rs {
		if r.Dst == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		bits, _ := r.Dst.Mask.Size()
		dst := netip.PrefixFrom(ip.Unmap(), bits)
		switch {
		case r.Table == unix.RT_TABLE_LOCAL && r.Type == unix.RTN_LOCAL:
			out[routeKey{dst: dst, local: true}] = true
		case r.Table == unix.RT_TABLE_MAIN && r.Type == unix.RTN_UNICAST:
			out[routeKey{dst: dst}] = true
		}
	}
	return out
}

// repairRoute builds the route the kernel would have made for the address: the
// subnet route (src = the subnet's primary for IPv4) or the local route.
func repairRoute(d Drift, linkIndex int, primary netip.Addr) *netlink.Route {
	ip := d.Address.Prefix.Addr()
	dst := &net.IPNet{IP: d.Route.Addr().AsSlice(), Mask: net.CIDRMask(d.Route.Bits(), ip.BitLen())}
	r := &netlink.Route{LinkIndex: linkIndex, Dst: dst, Protocol: unix.RTPROT_KERNEL}
	if d.Kind == LocalRouteMissing {
		r.Table = unix.RT_TABLE_LOCAL
		r.Type = unix.RTN_LOCAL
		r.Scope = netlink.SCOPE_HOST
		if ip.Is4() {
			r.Src = ip.AsSlice()
		}
		return r
	}
	r.Table = unix.RT_TABLE_MAIN
	r.Type = unix.RTN_UNICAST
	r.Scope = netlink.SCOPE_LINK
	if ip.Is4() {
		r.Src = primary.AsSlice()
	} else {
		r.Priority = 256 // the kernel's metric for IPv6 prefix routes
	}
	return r
}

// primaryOf returns the first address of p's subnet on the link, which the kernel
// uses as the prefix route's source.
func primaryOf(addrs []KernelAddr, p netip.Prefix) netip.Addr {
	for _, ka := range addrs {
		if !ka.Secondary && subnet(ka.Prefix) == subnet(p) {
			return ka.Prefix.Addr()
		}
	}
	return p.Addr()
}
