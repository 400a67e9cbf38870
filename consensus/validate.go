package consensus

import (
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"
)

// Limits of resource fields.
const (
	maxNameLen      = 63   // a DNS label; names appear in logs, metrics and CLI columns
	maxInterfaceLen = 15   // Linux IFNAMSIZ (16) minus the terminating NUL
	maxHookPathLen  = 4095 // Linux PATH_MAX (4096) minus the terminating NUL
)

// ValidationError reports one bad resource field: the value, the rule it breaks and
// how to fix it.
type ValidationError struct {
	Resource string // the resource's name as given
	Field    string // e.g. "address", "preferred_owners"
	Value    string
	Problem  string // the rule broken, naming the limit
	Fix      string
}

func (e *ValidationError) Error() string {
	return fmt.Sprintf("resource %q: %s %q %s (%s)", e.Resource, e.Field, e.Value, e.Problem, e.Fix)
}

// ValidateResource checks a resource's fields on their own, without looking at any
// other resource (duplicates are the FSM's job). It returns a *ValidationError.
func ValidateResource(r Resource) error {
	bad := func(field, value, problem, fix string) error {
		return &ValidationError{Resource: r.Name, Field: field, Value: value, Problem: problem, Fix: fix}
	}
	if err := checkName(r.Name); err != "" {
		return bad("name", r.Name, err, "use lower-case letters, digits, '-', '_' and '.', e.g. \"web-1\"")
	}
	if err := checkAddress(r); err != "" {
		return bad("address", r.Address.String(), err, "give the address with its subnet's prefix length, e.g. 198.18.1.10/24")
	}
	if err := checkInterface(r.Interface); err != "" {
		return bad("interface", r.Interface, err, "name the interface as `ip link` shows it, e.g. eth0")
	}
	if _, err := parseFailback(r.Failback); err != nil {
		return bad("failback", r.Failback, err.Error(),
			`use "never" (default), "immediate" or "window:HH:MM-HH:MM" in UTC, e.g. "window:02:00-04:00"`)
	}
	if r.Group != "" {
		if err := checkName(r.Group); err != "" {
			return bad("group", r.Group, err, "group names follow the rules for resource names")
		}
	}
	for _, f := range []struct {
		field  string
		owners []string
	}{{"preferred_owners", r.PreferredOwners}, {"possible_owners", r.PossibleOwners}} {
		if err := checkOwners(f.owners); err != "" {
			return bad(f.field, strings.Join(f.owners, ","), err, "list each node id once")
		}
	}
	if len(r.PossibleOwners) > 0 {
		for _, p := range r.PreferredOwners {
			if !contains(r.PossibleOwners, p) {
				return bad("preferred_owners", p, "is not among possible_owners "+strings.Join(r.PossibleOwners, ","),
					"add it to possible_owners or remove it from preferred_owners")
			}
		}
	}
	switch r.OnQuorumLoss {
	case "", QuorumLossRelease, QuorumLossKeep:
	default:
		return bad("on_quorum_loss", r.OnQuorumLoss, "is not a quorum-loss policy",
			`use "release" (default: the address goes when the lease runs out) or "keep" (the address stays; `+
				`two nodes may then hold it at once)`)
	}
	if r.Hooks != nil {
		return validateHooks(r.Name, *r.Hooks)
	}
	return nil
}

func validateHooks(resource string, h Hooks) error {
	bad := func(field, value, problem, fix string) error {
		return &ValidationError{Resource: resource, Field: "hooks." + field, Value: value, Problem: problem, Fix: fix}
	}
	if h.Online == "" && h.Offline == "" && h.Failed == "" {
		return bad("online", "", "is empty, and so are hooks.offline and hooks.failed",
			"set at least one hook path, or remove the hooks block")
	}
	for _, f := range []struct{ field, path string }{{"online", h.Online}, {"offline", h.Offline}, {"failed", h.Failed}} {
		if err := checkHookPath(f.path); err != "" {
			return bad(f.field, f.path, err, "give the absolute path of an executable on every possible owner, "+
				"e.g. /usr/local/lib/clusterd/web-online")
		}
	}
	if h.Timeout == "" {
		return nil
	}
	d, err := time.ParseDuration(h.Timeout)
	if err != nil {
		return bad("timeout", h.Timeout, "is not a duration",
			fmt.Sprintf("write a duration from %v to %v, e.g. \"30s\" (default %v)", MinHookTimeout, MaxHookTimeout, DefaultHookTimeout))
	}
	if d < MinHookTimeout || d > MaxHookTimeout {
		return bad("timeout", h.Timeout, fmt.Sprintf("is outside %v to %v", MinHookTimeout, MaxHookTimeout),
			fmt.Sprintf("pick a timeout in that range (default %v)", DefaultHookTimeout))
	}
	return nil
}

// checkHookPath accepts "" (no hook) or a clean absolute path.
func checkHookPath(p string) string {
	switch {
	case p == "":
		return ""
	case len(p) > maxHookPathLen:
		return fmt.Sprintf("has %d characters, want at most %d (PATH_MAX)", len(p), maxHookPathLen)
	case !strings.HasPrefix(p, "/"):
		return "is not an absolute path (hooks run with no working directory of their own)"
	case strings.ContainsFunc(p, func(c rune) bool { return c < ' ' || c == 0x7f }):
		return "contains control characters"
	case path.Clean(p) != p || strings.HasSuffix(p, "/"):
		return "is not a clean path (no '..', '.', '//' or trailing '/')"
	}
	return ""
}

func checkName(s string) string {
	if len(s) < 1 || len(s) > maxNameLen {
		return fmt.Sprintf("has %d characters, want 1 to %d", len(s), maxNameLen)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if i == 0 && !alnum {
			return fmt.Sprintf("starts with %q, want a lower-case letter or digit", c)
		}
		if !alnum && c != '-' && c != '_' && c != '.' {
			return fmt.Sprintf("contains %q at position %d, want only a-z, 0-9, '-', '_' and '.'", c, i+1)
		}
	}
	return ""
}

func checkAddress(r Resource) string {
	p, ip := r.Address, r.Address.Addr()
	switch {
	case !p.IsValid():
		return "is not an address with a prefix length"
	case ip.Is4In6():
		return "is an IPv4-mapped IPv6 address; write it as IPv4"
	case ip.IsUnspecified():
		return "is the unspecified address"
	case ip.IsLoopback():
		return "is a loopback address"
	case ip.IsMulticast():
		return "is a multicast address"
	case p.Bits() == 0:
		return "has prefix length 0, which would put every address on the link"
	}
	return ""
}

// checkInterface follows the kernel's dev_valid_name.
func checkInterface(s string) string {
	switch {
	case len(s) < 1 || len(s) > maxInterfaceLen:
		return fmt.Sprintf("has %d characters, want 1 to %d (the kernel's limit)", len(s), maxInterfaceLen)
	case s == "." || s == "..":
		return "is not a valid interface name"
	case strings.ContainsAny(s, "/: \t\r\n\v\f"):
		return "contains '/', ':' or white space, which interface names cannot"
	}
	return ""
}

func checkOwners(owners []string) string {
	seen := make(map[string]bool, len(owners))
	for _, o := range owners {
		if o == "" {
			return "contains an empty node id"
		}
		if seen[o] {
			return fmt.Sprintf("lists node %q twice", o)
		}
		seen[o] = true
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// failback is a parsed failback policy.
type failback struct {
	immediate  bool
	window     bool
	start, end int // minutes after 00:00 UTC; the window is [start, end), wrapping midnight if end < start
}

// parseFailback parses "", "never", "immediate" or "window:HH:MM-HH:MM".
func parseFailback(s string) (failback, error) {
	switch s {
	case "", FailbackNever:
		return failback{}, nil
	case FailbackImmediate:
		return failback{immediate: true}, nil
	}
	spec, ok := strings.CutPrefix(s, "window:")
	if !ok {
		return failback{}, fmt.Errorf("is not a failback policy")
	}
	from, to, ok := strings.Cut(spec, "-")
	if !ok {
		return failback{}, fmt.Errorf("has no '-' between the window's start and end")
	}
	start, err := parseClock(from)
	if err != nil {
		return failback{}, err
	}
	end, err := parseClock(to)
	if err != nil {
		return failback{}, err
	}
	if start == end {
		return failback{}, fmt.Errorf("is an empty window (start equals end)")
	}
	return failback{window: true, start: start, end: end}, nil
}

// parseClock parses "HH:MM" (00:00 to 23:59) into minutes after midnight.
func parseClock(s string) (int, error) {
	hh, mm, ok := strings.Cut(s, ":")
	if !ok || len(hh) != 2 || len(mm) != 2 {
		return 0, fmt.Errorf("has time %q, want HH:MM", s)
	}
	h, err1 := strconv.Atoi(hh)
	m, err2 := strconv.Atoi(mm)
	if err1 != nil || err2 != nil || h < 0 || h > 23 || m < 0 || m > 59 {
		return 0, fmt.Errorf("has time %q, want 00:00 to 23:59", s)
	}
	return h*60 + m, nil
}

// open reports whether failback is allowed at minute-of-day m (UTC).
func (f failback) open(m int) bool {
	switch {
	case f.immediate:
		return true
	case !f.window:
		return false
	case f.start < f.end:
		return m >= f.start && m < f.end
	default:
		return m >= f.start || m < f.end
	}
}
