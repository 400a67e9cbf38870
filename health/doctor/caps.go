package doctor

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Capability numbers from linux/capability.h.
const (
	capNetBindService = 10
	capNetAdmin       = 12
	capNetRaw         = 13
)

// ntPort is the NetBIOS name service port clusterd binds on every cluster address.
const ntPort = 137

// grantFix is how to give clusterd the three capabilities it needs.
const grantFix = "run clusterd as root, or grant the capabilities: AmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW CAP_NET_BIND_SERVICE in its systemd unit (scripts/systemd/clusterd.service), or `setcap cap_net_admin,cap_net_raw,cap_net_bind_service+ep /usr/local/bin/clusterd`"

// ParseCapEff returns the effective capability set from the text of
// /proc/PID/status (the "CapEff:" line, 64 bits in hex).
func ParseCapEff(status []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "CapEff" {
			continue
		}
		v := strings.TrimSpace(val)
		eff, err := strconv.ParseUint(v, 16, 64)
		if err != nil {
			return 0, fmt.Errorf("CapEff %q is not a hexadecimal capability set: %w", v, err)
		}
		return eff, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no CapEff line in the process status (is /proc mounted?)")
}

// ReadCapEff reads this process's effective capabilities from proc (normally /proc).
func ReadCapEff(proc string) (uint64, error) {
	b, err := os.ReadFile(filepath.Join(proc, "self", "status"))
	if err != nil {
		return 0, fmt.Errorf("read capabilities: %w", err)
	}
	return ParseCapEff(b)
}

// Capabilities checks the effective set eff for what clusterd needs. unprivPort is
// net.ipv4.ip_unprivileged_port_start: when it is at most 137, binding UDP 137
// needs no CAP_NET_BIND_SERVICE.
func Capabilities(eff uint64, unprivPort int) []Finding {
	need := []struct {
		bit  uint
		name string
		why  string
	}{
		{capNetAdmin, "CAP_NET_ADMIN", "it cannot add or remove cluster addresses (netlink) or set promote_secondaries"},
		{capNetRaw, "CAP_NET_RAW", "it cannot send ARP/NDP announcements or probes (packet sockets)"},
		{capNetBindService, "CAP_NET_BIND_SERVICE", "it cannot bind UDP 137 for NetBIOS interfaces (event 1044)"},
	}
	var out []Finding
	for _, n := range need {
		f := Finding{Check: "capability", Subject: n.name}
		switch {
		case eff&(1<<n.bit) != 0:
			f.Severity, f.Message = OK, fmt.Sprintf("capability %s present", n.name)
		case n.bit == capNetBindService && unprivPort <= ntPort:
			f.Severity = OK
			f.Message = fmt.Sprintf("capability %s absent but not needed: net.ipv4.ip_unprivileged_port_start=%d lets anyone bind port %d", n.name, unprivPort, ntPort)
		default:
			f.Severity = Fail
			f.Message = fmt.Sprintf("capability %s missing in this process: run like this, %s", n.name, n.why)
			f.Fix = grantFix
		}
		out = append(out, f)
	}
	return out
}
