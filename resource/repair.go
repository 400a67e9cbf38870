package resource

import (
	"fmt"

	"github.com/vishvananda/netlink"
)

// verify reads back every managed link once (per batch, not per address: per-address
// read-back is quadratic at 1,000 addresses), compares it with what should be there
// and repairs what it can.
//
// IPv6 inserts an address's local route from a kernel workqueue even with NODAD, so
// right after an add it may not be there yet; adding it ourselves would leave a route
// behind the kernel does not know about. Those are checked from the next batch on.
func (m *Manager) verify(links map[string]netlink.Link, others map[string][]Address, want []Address, failed map[Address]error, fresh []Address) ([]Drift, []error) {
	isFresh := make(map[key]bool, len(fresh))
	for _, a := range fresh {
		isFresh[a.key()] = true
	}
	held := make(map[string][]Address)
	for _, a := range want {
		if _, bad := failed[a]; !bad {
			held[a.Interface] = append(held[a.Interface], a)
		}
	}
	var drifts []Drift
	var errs []error
	for name, l := range links {
		ka, err := m.k.addrs(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rs, err := m.k.routes(l)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var found []Drift
		for _, d := range findDrift(linkView{addrs: ka, routes: routeKeys(rs)}, held[name], others[name]) {
			if d.Kind == LocalRouteMissing && d.Address.Prefix.Addr().Is6() && isFresh[d.Address.key()] {
				continue
			}
			found = append(found, d)
		}
		for _, d := range found {
			if err := m.repair(l, ka, d); err != nil {
				errs = append(errs, err)
			}
		}
		drifts = append(drifts, found...)
	}
	return drifts, errs
}

func (m *Manager) repair(l netlink.Link, ka []KernelAddr, d Drift) error {
	log := m.log.With("vip", d.Address.Prefix.String(), "link", d.Address.Interface, "drift", d.Kind.String())
	switch d.Kind {
	case AddressMissing:
		if m.cfg.BeforeAdd != nil {
			if err := m.cfg.BeforeAdd(d.Address); err != nil {
				return err
			}
		}
		log.Warn("cluster address vanished from its interface; adding it again")
		if err := m.k.add(l, d.Address, m.cfg.Lifetime); err != nil {
			return err
		}
		if m.cfg.Announcer != nil {
			m.cfg.Announcer.Announce(d.Address.Interface, d.Address.Prefix.Addr())
		}
		return nil
	case PrefixRouteMissing, LocalRouteMissing:
		log.Warn("route of a cluster address vanished; restoring it", "route", d.Route.String())
		return m.k.addRoute(repairRoute(d, l.Attrs().Index, primaryOf(ka, d.Address.Prefix)))
	case OtherAddressLost:
		log.Error("an address clusterd does not manage vanished during a batch; not restoring it (it is not clusterd's)")
		return fmt.Errorf("address %s on %s vanished while clusterd changed that interface", d.Address.Prefix, d.Address.Interface)
	}
	return nil
}
