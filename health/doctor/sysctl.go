package doctor

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Conf is the part of net.ipv4.conf.IF (and net.ipv6.conf.IF) that decides whether
// cluster addresses on IF answer ARP and survive removals.
type Conf struct {
	PromoteSecondaries int // net.ipv4.conf.IF.promote_secondaries
	ArpIgnore          int // net.ipv4.conf.IF.arp_ignore
	ArpAnnounce        int // net.ipv4.conf.IF.arp_announce
	ArpFilter          int // net.ipv4.conf.IF.arp_filter
	DisableIPv6        int // net.ipv6.conf.IF.disable_ipv6; -1: the kernel has no IPv6
}

// ReadConf reads the sysctls of Conf for iface ("all" for the conf/all values)
// from proc (normally /proc), in the network namespace of the calling thread.
func ReadConf(proc, iface string) (Conf, error) {
	v4 := filepath.Join(proc, "sys", "net", "ipv4", "conf", iface)
	var c Conf
	var errs []error
	for _, s := range []struct {
		key string
		dst *int
	}{
		{"promote_secondaries", &c.PromoteSecondaries},
		{"arp_ignore", &c.ArpIgnore},
		{"arp_announce", &c.ArpAnnounce},
		{"arp_filter", &c.ArpFilter},
	} {
		v, err := readSysctl(filepath.Join(v4, s.key))
		*s.dst = v
		errs = append(errs, err)
	}
	v, err := readSysctl(filepath.Join(proc, "sys", "net", "ipv6", "conf", iface, "disable_ipv6"))
	switch {
	case errors.Is(err, os.ErrNotExist):
		v = -1
	case err != nil:
		errs = append(errs, err)
	}
	c.DisableIPv6 = v
	return c, errors.Join(errs...)
}

// ReadSysctl reads one integer sysctl by its dotted name (net.ipv4.ip_nonlocal_bind)
// from proc, in the network namespace of the calling thread.
func ReadSysctl(proc, name string) (int, error) {
	return readSysctl(filepath.Join(proc, "sys", strings.ReplaceAll(name, ".", "/")))
}

func readSysctl(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read sysctl: %w", err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("sysctl %s: %q is not an integer", path, strings.TrimSpace(string(b)))
	}
	return v, nil
}

// InterfaceSysctls checks the conf of iface against conf/all the way the kernel
// combines them (include/linux/inetdevice.h: promote_secondaries and arp_filter
// are the OR of both, arp_ignore and arp_announce the maximum). v6 says whether
// IPv6 cluster addresses go on iface.
func InterfaceSysctls(iface string, all, dev Conf, v6 bool) []Finding {
	key := func(name string) string { return "net.ipv4.conf." + iface + "." + name }
	out := []Finding{promoteSecondaries(iface, all, dev)}

	ignore := max(all.ArpIgnore, dev.ArpIgnore)
	f := Finding{Check: "sysctl", Subject: key("arp_ignore")}
	switch ignore {
	case 8:
		f.Severity = Fail
		f.Message = fmt.Sprintf("arp_ignore=8 on %s (all=%d, %s=%d): the kernel answers no ARP request on %s, so no client reaches a cluster address held here", iface, all.ArpIgnore, iface, dev.ArpIgnore, iface)
		f.Fix = "sysctl -w " + setting(iface, "arp_ignore", all.ArpIgnore, dev.ArpIgnore, 8, 1) + " and persist it in /etc/sysctl.d/"
	case 2:
		f.Severity = Warn
		f.Message = fmt.Sprintf("arp_ignore=2 on %s (all=%d, %s=%d): ARP is answered only when the sender and the cluster address are in one subnet of an address on %s; a cluster address outside the subnets there (a /32 from another range) answers no one", iface, all.ArpIgnore, iface, dev.ArpIgnore, iface)
		f.Fix = "keep cluster addresses inside a subnet the interface has, or sysctl -w " + setting(iface, "arp_ignore", all.ArpIgnore, dev.ArpIgnore, 2, 1)
	default:
		f.Severity = OK
		f.Message = fmt.Sprintf("arp_ignore=%d on %s: ARP requests for cluster addresses are answered", ignore, iface)
	}
	out = append(out, f)

	announce := max(all.ArpAnnounce, dev.ArpAnnounce)
	out = append(out, Finding{Check: "sysctl", Subject: key("arp_announce"), Severity: OK,
		Message: fmt.Sprintf("arp_announce=%d on %s: affects only the sender address of the kernel's own ARP requests; clusterd's announcements are sent separately", announce, iface)})

	if all.ArpFilter != 0 || dev.ArpFilter != 0 {
		out = append(out, Finding{Check: "sysctl", Subject: key("arp_filter"), Severity: Info,
			Message: fmt.Sprintf("arp_filter=1 on %s: ARP is answered on %s only if the reply would be routed out of %s; with two interfaces in one subnet, a cluster address may answer on neither", iface, iface, iface)})
	}

	if v6 {
		f := Finding{Check: "sysctl", Subject: "net.ipv6.conf." + iface + ".disable_ipv6", Severity: OK,
			Message: fmt.Sprintf("IPv6 is enabled on %s", iface)}
		switch dev.DisableIPv6 {
		case -1:
			f.Severity, f.Message = Fail, fmt.Sprintf("this kernel has no IPv6 (no net.ipv6 sysctls), but IPv6 cluster addresses go on %s", iface)
			f.Fix = "boot without ipv6.disable=1, or remove the IPv6 resources"
		case 0:
		default:
			f.Severity, f.Message = Fail, fmt.Sprintf("disable_ipv6=%d on %s: IPv6 cluster addresses cannot be added there", dev.DisableIPv6, iface)
			f.Fix = fmt.Sprintf("sysctl -w net.ipv6.conf.%s.disable_ipv6=0 and persist it in /etc/sysctl.d/", iface)
		}
		out = append(out, f)
	}
	return out
}

func promoteSecondaries(iface string, all, dev Conf) Finding {
	f := Finding{Check: "sysctl", Subject: "net.ipv4.conf." + iface + ".promote_secondaries"}
	if all.PromoteSecondaries != 0 || dev.PromoteSecondaries != 0 {
		f.Severity, f.Message = OK, fmt.Sprintf("promote_secondaries=1 on %s: removing a subnet's primary address keeps its secondaries", iface)
		return f
	}
	f.Severity = Info
	f.Message = fmt.Sprintf("promote_secondaries=0 on %s: clusterd sets it to 1 when it manages %s (without it, deleting a subnet's primary address deletes every secondary and its routes)", iface, iface)
	return f
}

// setting names the keys to change from bad to good: conf/all, the interface, or both.
func setting(iface, name string, all, dev, bad, good int) string {
	var keys []string
	if all == bad {
		keys = append(keys, fmt.Sprintf("net.ipv4.conf.all.%s=%d", name, good))
	}
	if dev == bad || len(keys) == 0 {
		keys = append(keys, fmt.Sprintf("net.ipv4.conf.%s.%s=%d", iface, name, good))
	}
	return strings.Join(keys, " ")
}

// NonlocalBind checks net.ipv4.ip_nonlocal_bind.
func NonlocalBind(v int) Finding {
	f := Finding{Check: "sysctl", Subject: "net.ipv4.ip_nonlocal_bind"}
	if v == 0 {
		f.Severity, f.Message = OK, "ip_nonlocal_bind=0: other processes cannot bind a cluster address this node does not hold"
		return f
	}
	f.Severity = Warn
	f.Message = fmt.Sprintf("ip_nonlocal_bind=%d: any process can bind cluster addresses before this node holds them; one that binds UDP 137 on one without SO_REUSEADDR makes clusterd's NetBIOS interface fail there on takeover (event 1044)", v)
	f.Fix = "sysctl -w net.ipv4.ip_nonlocal_bind=0 unless a service needs it; then keep such services off UDP 137 on cluster addresses"
	return f
}
