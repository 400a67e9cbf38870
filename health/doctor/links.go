package doctor

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// Interface is an interface clusterd will manage and what names it.
type Interface struct {
	Name string
	By   []string // resources (or "--interface", "addresses.json") that name it
	V6   bool     // IPv6 cluster addresses go on it
}

// Link is the state of a network interface as the kernel reports it.
type Link struct {
	Up      bool // administratively up (IFF_UP)
	Running bool // operationally up: carrier (IFF_RUNNING)
}

// ReadLinks lists the interfaces of the calling thread's network namespace.
func ReadLinks() (map[string]Link, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make(map[string]Link, len(ifs))
	for _, i := range ifs {
		out[i.Name] = Link{Up: i.Flags&net.FlagUp != 0, Running: i.Flags&net.FlagRunning != 0}
	}
	return out, nil
}

// Interfaces checks that every interface in want exists and is up.
func Interfaces(want []Interface, have map[string]Link) []Finding {
	var out []Finding
	for _, w := range want {
		by := ""
		if len(w.By) > 0 {
			by = " (named by " + strings.Join(w.By, ", ") + ")"
		}
		f := Finding{Check: "interface", Subject: w.Name}
		l, ok := have[w.Name]
		switch {
		case !ok:
			f.Severity = Fail
			f.Message = fmt.Sprintf("interface %s does not exist on this node%s: cluster addresses on it cannot be added here", w.Name, by)
			f.Fix = fmt.Sprintf("create or rename the interface (existing: %s), or give the resource the interface this node has (every node must use the same name), or leave this node out of the resource's --possible-owner list", strings.Join(sortedNames(have), ", "))
		case !l.Up:
			f.Severity = Warn
			f.Message = fmt.Sprintf("interface %s is down%s: addresses on it answer no one", w.Name, by)
			f.Fix = fmt.Sprintf("ip link set %s up (and make it persistent in the network configuration)", w.Name)
		case !l.Running:
			f.Severity = Warn
			f.Message = fmt.Sprintf("interface %s has no carrier%s: addresses on it answer no one", w.Name, by)
			f.Fix = fmt.Sprintf("check the cable, switch port or virtual link of %s", w.Name)
		default:
			f.Severity, f.Message = OK, fmt.Sprintf("interface %s exists and is up%s", w.Name, by)
		}
		out = append(out, f)
	}
	return out
}

func sortedNames(m map[string]Link) []string {
	var s []string
	for k := range m {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}
