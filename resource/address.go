// Package resource puts cluster IP addresses on the kernel's interfaces and takes them
// off again, in an order that never costs another address or route (the Linux
// primary/secondary trap behind Q287032), verifies the result after every batch and
// repairs drift. Only addresses it added itself are ever removed: they are recorded in
// a small state file in the data directory.
package resource

import (
	"fmt"
	"net/netip"
	"sort"
)

// Address is one cluster address on one interface.
type Address struct {
	Prefix    netip.Prefix // the address with its prefix length, e.g. 198.18.1.10/24
	Interface string
}

func (a Address) String() string { return a.Prefix.String() + "@" + a.Interface }

// key identifies an address on an interface regardless of prefix length: the kernel
// refuses the same IP twice on one interface.
type key struct {
	ip   netip.Addr
	link string
}

func (a Address) key() key { return key{a.Prefix.Addr(), a.Interface} }

// subnet is the network an address belongs to, the unit of Linux's primary/secondary
// bookkeeping.
func subnet(p netip.Prefix) netip.Prefix { return p.Masked() }

// KernelAddr is an address as the kernel lists it on an interface.
type KernelAddr struct {
	Prefix    netip.Prefix
	Secondary bool // IFA_F_SECONDARY: not the first address of its subnet (IPv4 only)
}

func sortAddresses(as []Address) {
	sort.Slice(as, func(i, j int) bool {
		if as[i].Interface != as[j].Interface {
			return as[i].Interface < as[j].Interface
		}
		return as[i].Prefix.Addr().Less(as[j].Prefix.Addr())
	})
}

// ValidateAddress checks an address a user asked for, independent of the kernel.
func ValidateAddress(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("address %q is not a valid prefix (write it as ADDRESS/LENGTH, e.g. 198.18.1.10/24)", p)
	case p.Addr().Is4In6():
		return fmt.Errorf("address %s is an IPv4-mapped IPv6 address (write the plain IPv4 form)", p)
	case p.Addr().IsUnspecified(), p.Addr().IsLoopback(), p.Addr().IsMulticast(), p.Addr().IsLinkLocalUnicast():
		return fmt.Errorf("address %s cannot be a cluster address (unspecified, loopback, multicast and link-local are refused; use a unicast address)", p)
	}
	if p.Addr().Is4() {
		if p.Bits() < 31 && p.Addr() == Broadcast(p) {
			return fmt.Errorf("address %s is the broadcast address of %s (use a host address inside the subnet)", p, p.Masked())
		}
		if p.Bits() < 31 && p.Addr() == p.Masked().Addr() {
			return fmt.Errorf("address %s is the network address of %s (use a host address inside the subnet)", p, p.Masked())
		}
	}
	return nil
}

// Broadcast returns the IPv4 broadcast address of p's subnet.
func Broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
