package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"
)

// agentComm starts the command name (/proc/PID/comm) of clusterd's processes: the
// installed binary is "clusterd"; builds for tests and benchmarks add a suffix.
const agentComm = "clusterd"

// holder is a socket on UDP 137 and the process that has it open, if known.
type holder struct {
	Socket
	Owner Process // zero PID: unknown (not root, or the process is gone)
}

func (h holder) String() string {
	who := fmt.Sprintf("socket inode %d of uid %d (owner unknown: run doctor as root to see it)", h.Inode, h.UID)
	if h.Owner.PID != 0 {
		who = h.Owner.String()
	}
	return fmt.Sprintf("%s on %v", who, h.Local.Addr())
}

func (h holder) own() bool { return h.Owner.Clusterd }

// target is an address clusterd binds UDP 137 on and the sockets in its way.
type target struct {
	Addr netip.Addr // a cluster address, or 0.0.0.0 when they are not known
	Own  []holder   // clusterd's own sockets there
	// Others are the other sockets a bind at Addr collides with unless each side
	// set SO_REUSEADDR; Cared are those of them that stand in clusterd's way (all
	// of Others, except for 0.0.0.0, where only wildcard sockets do).
	Others, Cared []holder
}

// wildcard is the target when the cluster addresses are not known: a socket on the
// wildcard is in the way of every cluster address.
var wildcard = netip.IPv4Unspecified()

// overlaps says whether a bind of UDP a:137 collides with socket s in the kernel's
// check (net/ipv4/udp.c udp_lib_lport_inuse): same port, and the same address or a
// wildcard on either side. An IPv6 wildcard socket may be dual-stack (/proc does not
// show IPV6_V6ONLY), so it counts.
func overlaps(s netip.AddrPort, a netip.Addr) bool {
	if s.Port() != ntPort {
		return false
	}
	sa := s.Addr()
	if sa.Is6() && !sa.Is4In6() {
		return sa.IsUnspecified()
	}
	sa = sa.Unmap()
	return sa == a || sa.IsUnspecified() || a.IsUnspecified()
}

// planUDP137 lists what to check for UDP 137: one target per IPv4 cluster address
// (NetBIOS is IPv4 only), or the wildcard when addrs is empty; and, in that case,
// the sockets of other processes on specific addresses, which block clusterd only if
// they are on a cluster address.
func planUDP137(addrs []netip.Addr, socks []Socket, owners map[uint64]Process) (targets []target, stray []holder) {
	var hs []holder
	for _, s := range socks {
		if s.Local.Port() == ntPort {
			hs = append(hs, holder{Socket: s, Owner: owners[s.Inode]})
		}
	}
	var v4 []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range addrs {
		if a = a.Unmap(); a.Is4() && !seen[a] {
			seen[a] = true
			v4 = append(v4, a)
		}
	}
	if len(v4) == 0 {
		v4 = []netip.Addr{wildcard}
		for _, h := range hs {
			if !h.own() && !h.Local.Addr().IsUnspecified() && overlaps(h.Local, wildcard) {
				stray = append(stray, h)
			}
		}
	}
	for _, a := range v4 {
		t := target{Addr: a}
		for _, h := range hs {
			switch {
			case !overlaps(h.Local, a):
			case h.own():
				t.Own = append(t.Own, h)
			default:
				t.Others = append(t.Others, h)
				if a != wildcard || h.Local.Addr().IsUnspecified() {
					t.Cared = append(t.Cared, h)
				}
			}
		}
		targets = append(targets, t)
	}
	return targets, stray
}

// needsProbe says whether a probe bind can tell more about t than /proc did.
func (t target) needsProbe() bool { return len(t.Cared) > 0 }

// judgeUDP137 turns a target and the result of a probe bind at its address (nil:
// bound fine) into a finding.
func judgeUDP137(t target, probeErr error) Finding {
	where := "UDP 137 on " + t.Addr.String()
	if t.Addr == wildcard {
		where = "UDP 137 on the wildcard (cluster addresses unknown: give --address or --api)"
	}
	f := Finding{Check: "udp137", Subject: t.Addr.String()}
	names := func(hs []holder) string {
		var s []string
		for _, h := range hs {
			s = append(s, h.String())
		}
		return strings.Join(s, "; ")
	}
	stopFix := func(hs []holder) string {
		return fmt.Sprintf("stop %s, or make it bind only this node's own addresses (Samba nmbd: `bind interfaces only = yes` and an `interfaces =` line without cluster addresses in smb.conf), or have it set SO_REUSEADDR", names(hs))
	}
	switch {
	case len(t.Cared) == 0 && len(t.Own) > 0:
		f.Severity, f.Message = OK, fmt.Sprintf("%s: held by clusterd's own NetBIOS interface (%s)", where, t.Own[0].Owner)
	case len(t.Cared) == 0:
		f.Severity, f.Message = OK, fmt.Sprintf("%s: no other process is bound there", where)
	case probeErr == nil:
		var same []holder
		for _, h := range t.Cared {
			if !h.Local.Addr().IsUnspecified() {
				same = append(same, h)
			}
		}
		if len(same) > 0 {
			f.Severity = Warn
			f.Message = fmt.Sprintf("%s: shared with %s (SO_REUSEADDR on both sides); datagrams to %v go to one of the sockets there, so queries may reach that process instead of clusterd", where, names(same), t.Addr)
			f.Fix = fmt.Sprintf("keep %s off cluster addresses (Samba nmbd: list only the node's own addresses in `interfaces =`)", names(same))
		} else {
			f.Severity = Info
			f.Message = fmt.Sprintf("%s: %s shares the port (SO_REUSEADDR on both sides); clusterd's socket on the address gets the queries sent to it", where, names(t.Cared))
		}
	case errors.Is(probeErr, syscall.EADDRINUSE) && len(t.Others) == len(t.Cared):
		f.Severity = Fail
		who := names(t.Cared)
		if len(t.Cared) > 1 {
			who = "one of " + who + ","
		}
		f.Message = fmt.Sprintf("%s: %s holds it without SO_REUSEADDR, so clusterd cannot create the NetBIOS interface there (event 1044)", where, who)
		f.Fix = stopFix(t.Cared)
	case errors.Is(probeErr, syscall.EADDRINUSE):
		f.Severity = Warn
		f.Message = fmt.Sprintf("%s: may be blocked: a socket holds port 137 without SO_REUSEADDR, perhaps %s (other sockets on the port make it ambiguous)", where, names(t.Cared))
		f.Fix = stopFix(t.Cared)
	default:
		f.Severity = Warn
		f.Message = fmt.Sprintf("%s: %s may block it (a socket without SO_REUSEADDR blocks clusterd, one with it coexists); doctor could not test which: %v", where, names(t.Cared), probeErr)
		f.Fix = "run doctor as root to test, or check the process's configuration; " + stopFix(t.Cared)
	}
	return f
}

// strayFinding reports a socket on a specific address when the cluster addresses
// are not known.
func strayFinding(h holder) Finding {
	return Finding{Check: "udp137", Subject: h.Local.Addr().String(), Severity: Info,
		Message: fmt.Sprintf("UDP 137: %s: blocks clusterd only if %v is a cluster address (give --address or --api to check)", h, h.Local.Addr())}
}

// UDP137 finds processes bound to UDP 137 on the cluster addresses addrs (IPv4; the
// wildcard when empty) or on the wildcard, in the calling thread's network
// namespace, and tells a socket that shares the port from one that blocks clusterd
// by binding each contested address for an instant as clusterd would (ProbeBind).
func UDP137(ctx context.Context, proc string, addrs []netip.Addr) []Finding {
	socks, err := ReadSockets(proc)
	if err != nil {
		return []Finding{{Check: "udp137", Severity: Warn, Message: fmt.Sprintf("cannot read UDP sockets: %v", err),
			Fix: "mount /proc, or find holders of UDP 137 with `ss -ulpn 'sport = :137'`"}}
	}
	inodes := map[uint64]bool{}
	for _, s := range socks {
		if s.Local.Port() == ntPort {
			inodes[s.Inode] = true
		}
	}
	owners, err := SocketOwners(proc, inodes)
	if err != nil {
		owners = nil // owners stay unknown; the findings say so
	}
	targets, stray := planUDP137(addrs, socks, owners)
	var out []Finding
	for _, t := range targets {
		var perr error
		if t.needsProbe() {
			perr = ProbeBind(ctx, t.Addr, ntPort)
		}
		out = append(out, judgeUDP137(t, perr))
	}
	for _, h := range stray {
		out = append(out, strayFinding(h))
	}
	return out
}
