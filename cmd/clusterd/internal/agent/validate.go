package agent

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/resource"
	"github.com/vishvananda/netlink"
)

// toResource turns an API request into a replicated resource, checking everything
// that can be checked without the rest of the cluster. Errors wrap api.ErrInvalid and
// name the value, the limit and the fix.
func (a *Agent) toResource(req api.ResourceRequest) (consensus.Resource, error) {
	bad := func(format string, args ...any) (consensus.Resource, error) {
		return consensus.Resource{}, fmt.Errorf("%w: resource %q: %s", api.ErrInvalid, req.Name, fmt.Sprintf(format, args...))
	}
	addr := strings.TrimSpace(req.Address)
	if addr == "" {
		return bad("no address (give --address PREFIX, e.g. 198.18.1.10/16)")
	}
	if !strings.Contains(addr, "/") {
		if ip, err := netip.ParseAddr(addr); err == nil {
			return bad("address %s has no prefix length (write %s/LEN with the length of the subnet on the interface, or /%d for a host address)", addr, addr, ip.BitLen())
		}
	}
	p, err := netip.ParsePrefix(addr)
	if err != nil {
		return bad("address %q is not a valid ADDRESS/LENGTH prefix (e.g. 198.18.1.10/16 or 2001:2::10/64)", req.Address)
	}
	if err := resource.ValidateAddress(p); err != nil {
		return bad("%v", err)
	}
	r := consensus.Resource{
		Name: req.Name, Address: p, Interface: req.Interface,
		PreferredOwners: req.PreferredOwners, PossibleOwners: req.PossibleOwners,
		Failback: req.Failback, Group: req.Group, Offline: req.Offline,
		OnQuorumLoss: req.OnQuorumLoss,
	}
	nb, err := netbiosSettings(req)
	if err != nil {
		return bad("%v", err)
	}
	r.NetBIOS = nb
	for _, c := range req.Checks {
		spec, err := health.ParseSpec(c)
		if err != nil {
			return bad("%v", err)
		}
		r.Checks = append(r.Checks, spec)
	}
	if req.HookOnline != "" || req.HookOffline != "" || req.HookFailed != "" || req.HookTimeout != "" {
		r.Hooks = &consensus.Hooks{Online: req.HookOnline, Offline: req.HookOffline, Failed: req.HookFailed, Timeout: req.HookTimeout}
	}
	if err := consensus.ValidateResource(r); err != nil {
		return bad("%v", err)
	}
	if err := a.checkLocal(p, req.Interface); err != nil {
		return bad("%v", err)
	}
	return r, nil
}

// checkLocal checks the address against this node's kernel: the interface exists, the
// address is not one of the node's own, and it does not split the interface's subnet.
func (a *Agent) checkLocal(p netip.Prefix, ifname string) error {
	l, err := a.handle.LinkByName(ifname)
	if err != nil {
		var names []string
		if links, lerr := a.handle.LinkList(); lerr == nil {
			for _, l := range links {
				if l.Attrs().Name != "lo" {
					names = append(names, l.Attrs().Name)
				}
			}
		}
		return fmt.Errorf("interface %q does not exist on node %s (interfaces here: %s)", ifname, a.cfg.NodeID, strings.Join(names, ", "))
	}
	all, err := a.handle.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return fmt.Errorf("list this node's addresses: %v", err)
	}
	recorded := make(map[netip.Addr]bool)
	for _, ad := range a.mgr.Recorded() {
		recorded[ad.Prefix.Addr()] = true
	}
	for _, na := range all {
		ip, ok := netip.AddrFromSlice(na.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if recorded[ip] {
			continue // a cluster address this node holds
		}
		bits, _ := na.Mask.Size()
		own := netip.PrefixFrom(ip, bits)
		if ip == p.Addr() {
			return fmt.Errorf("address %s is node %s's own address %s (choose an unused address for the cluster)", p.Addr(), a.cfg.NodeID, own)
		}
		if na.LinkIndex != l.Attrs().Index || p.Bits() == p.Addr().BitLen() || ip.Is4() != p.Addr().Is4() {
			continue
		}
		if own.Masked().Contains(p.Addr()) && own.Bits() != p.Bits() {
			return fmt.Errorf("address %s lies in %s's subnet %s but has prefix length /%d (use %s/%d to match the subnet, or /%d for a host address)",
				p, ifname, own.Masked(), p.Bits(), p.Addr(), own.Bits(), p.Addr().BitLen())
		}
	}
	return nil
}
