package consensus

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidateResource(t *testing.T) {
	ok := Resource{Name: "web-1", Address: netip.MustParsePrefix("198.18.1.10/24"), Interface: "eth0"}
	with := func(f func(*Resource)) Resource {
		r := ok.Clone()
		f(&r)
		return r
	}
	tests := []struct {
		name      string
		r         Resource
		wantField string   // "" = valid
		wantIn    []string // substrings of the message
	}{
		{name: "minimal", r: ok},
		{name: "full", r: with(func(r *Resource) {
			r.Name, r.Address, r.Interface = "a.b_c-9", netip.MustParsePrefix("2001:2::10/64"), "bond0.100"
			r.PreferredOwners, r.PossibleOwners = []string{"n2", "n1"}, []string{"n1", "n2", "n3"}
			r.Failback, r.Group = "window:22:00-02:00", "g1"
		})},
		{name: "host address /32", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("198.18.1.10/32") })},
		{name: "failback immediate", r: with(func(r *Resource) { r.Failback = FailbackImmediate })},
		{name: "failback never", r: with(func(r *Resource) { r.Failback = FailbackNever })},
		{name: "63-character name", r: with(func(r *Resource) { r.Name = strings.Repeat("a", 63) })},
		{name: "15-character interface", r: with(func(r *Resource) { r.Interface = strings.Repeat("e", 15) })},

		{name: "empty name", r: with(func(r *Resource) { r.Name = "" }), wantField: "name", wantIn: []string{"1 to 63"}},
		{name: "64-character name", r: with(func(r *Resource) { r.Name = strings.Repeat("a", 64) }), wantField: "name", wantIn: []string{"64 characters"}},
		{name: "upper case", r: with(func(r *Resource) { r.Name = "Web" }), wantField: "name", wantIn: []string{`"Web"`, "lower-case"}},
		{name: "starts with a dash", r: with(func(r *Resource) { r.Name = "-web" }), wantField: "name", wantIn: []string{"starts with"}},
		{name: "slash in name", r: with(func(r *Resource) { r.Name = "a/b" }), wantField: "name", wantIn: []string{"position 2"}},
		{name: "no address", r: with(func(r *Resource) { r.Address = netip.Prefix{} }), wantField: "address"},
		{name: "unspecified", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("0.0.0.0/24") }), wantField: "address", wantIn: []string{"unspecified"}},
		{name: "loopback", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("127.0.0.2/8") }), wantField: "address", wantIn: []string{"loopback"}},
		{name: "IPv6 loopback", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("::1/128") }), wantField: "address", wantIn: []string{"loopback"}},
		{name: "multicast", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("224.0.0.5/24") }), wantField: "address", wantIn: []string{"multicast"}},
		{name: "IPv6 multicast", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("ff02::1/64") }), wantField: "address", wantIn: []string{"multicast"}},
		{name: "mapped IPv4", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("::ffff:198.18.1.1/120") }), wantField: "address", wantIn: []string{"IPv4-mapped"}},
		{name: "prefix length 0", r: with(func(r *Resource) { r.Address = netip.MustParsePrefix("198.18.1.1/0") }), wantField: "address", wantIn: []string{"prefix length 0"}},
		{name: "no interface", r: with(func(r *Resource) { r.Interface = "" }), wantField: "interface", wantIn: []string{"1 to 15"}},
		{name: "16-character interface", r: with(func(r *Resource) { r.Interface = strings.Repeat("e", 16) }), wantField: "interface", wantIn: []string{"16 characters"}},
		{name: "slash in interface", r: with(func(r *Resource) { r.Interface = "eth0/1" }), wantField: "interface", wantIn: []string{"'/'"}},
		{name: "space in interface", r: with(func(r *Resource) { r.Interface = "eth 0" }), wantField: "interface"},
		{name: "colon in interface", r: with(func(r *Resource) { r.Interface = "eth0:1" }), wantField: "interface"},
		{name: "unknown failback", r: with(func(r *Resource) { r.Failback = "sometimes" }), wantField: "failback", wantIn: []string{"window:HH:MM-HH:MM"}},
		{name: "window hour 24", r: with(func(r *Resource) { r.Failback = "window:24:00-02:00" }), wantField: "failback", wantIn: []string{"00:00 to 23:59"}},
		{name: "window one digit", r: with(func(r *Resource) { r.Failback = "window:2:00-04:00" }), wantField: "failback", wantIn: []string{"HH:MM"}},
		{name: "window without end", r: with(func(r *Resource) { r.Failback = "window:02:00" }), wantField: "failback"},
		{name: "empty window", r: with(func(r *Resource) { r.Failback = "window:02:00-02:00" }), wantField: "failback", wantIn: []string{"empty"}},
		{name: "bad group", r: with(func(r *Resource) { r.Group = "G 1" }), wantField: "group"},
		{name: "empty preferred owner", r: with(func(r *Resource) { r.PreferredOwners = []string{"n1", ""} }), wantField: "preferred_owners", wantIn: []string{"empty"}},
		{name: "duplicate possible owner", r: with(func(r *Resource) { r.PossibleOwners = []string{"n1", "n1"} }), wantField: "possible_owners", wantIn: []string{`"n1" twice`}},
		{name: "keep on quorum loss", r: with(func(r *Resource) { r.OnQuorumLoss = QuorumLossKeep })},
		{name: "release on quorum loss", r: with(func(r *Resource) { r.OnQuorumLoss = QuorumLossRelease })},
		{name: "unknown quorum-loss policy", r: with(func(r *Resource) { r.OnQuorumLoss = "hold" }),
			wantField: "on_quorum_loss", wantIn: []string{`"hold"`, `"release"`, `"keep"`, "two nodes"}},
		{name: "all hooks", r: with(func(r *Resource) {
			r.Hooks = &Hooks{Online: "/usr/local/bin/up", Offline: "/usr/local/bin/down", Failed: "/opt/x/failed", Timeout: "45s"}
		})},
		{name: "one hook, default timeout", r: with(func(r *Resource) { r.Hooks = &Hooks{Offline: "/bin/true"} })},
		{name: "timeout 1s", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "/bin/true", Timeout: "1s"} })},
		{name: "timeout 10m", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "/bin/true", Timeout: "10m"} })},
		{name: "empty hooks", r: with(func(r *Resource) { r.Hooks = &Hooks{Timeout: "5s"} }),
			wantField: "hooks.online", wantIn: []string{"remove the hooks block"}},
		{name: "relative hook", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "bin/up"} }),
			wantField: "hooks.online", wantIn: []string{`"bin/up"`, "absolute"}},
		{name: "hook with ..", r: with(func(r *Resource) { r.Hooks = &Hooks{Failed: "/usr/../bin/x"} }),
			wantField: "hooks.failed", wantIn: []string{"clean"}},
		{name: "hook directory", r: with(func(r *Resource) { r.Hooks = &Hooks{Offline: "/usr/bin/"} }),
			wantField: "hooks.offline", wantIn: []string{"trailing"}},
		{name: "hook with newline", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "/bin/a\nb"} }),
			wantField: "hooks.online", wantIn: []string{"control"}},
		{name: "timeout not a duration", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "/bin/true", Timeout: "30"} }),
			wantField: "hooks.timeout", wantIn: []string{`"30"`, "1s to 10m0s"}},
		{name: "timeout too short", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "/bin/true", Timeout: "999ms"} }),
			wantField: "hooks.timeout", wantIn: []string{"outside 1s to 10m0s"}},
		{name: "timeout too long", r: with(func(r *Resource) { r.Hooks = &Hooks{Online: "/bin/true", Timeout: "10m1s"} }),
			wantField: "hooks.timeout", wantIn: []string{"outside"}},
		{name: "preferred not possible", r: with(func(r *Resource) {
			r.PreferredOwners, r.PossibleOwners = []string{"n3"}, []string{"n1", "n2"}
		}), wantField: "preferred_owners", wantIn: []string{"n3", "possible_owners n1,n2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateResource(tc.r)
			if tc.wantField == "" {
				if err != nil {
					t.Fatalf("ValidateResource(%+v): got %v, want nil", tc.r, err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("ValidateResource(%+v): got %v, want a *ValidationError on %s", tc.r, err, tc.wantField)
			}
			if ve.Field != tc.wantField {
				t.Errorf("field: got %q, want %q (%v)", ve.Field, tc.wantField, err)
			}
			if ve.Fix == "" {
				t.Errorf("error names no fix: %v", err)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
}

func TestFailbackOpen(t *testing.T) {
	tests := []struct {
		policy string
		minute int
		want   bool
	}{
		{"", 0, false},
		{FailbackNever, 600, false},
		{FailbackImmediate, 600, true},
		{"window:02:00-04:00", 119, false},
		{"window:02:00-04:00", 120, true},
		{"window:02:00-04:00", 239, true},
		{"window:02:00-04:00", 240, false},
		{"window:22:00-02:00", 1439, true},
		{"window:22:00-02:00", 0, true},
		{"window:22:00-02:00", 120, false},
		{"window:22:00-02:00", 1319, false},
	}
	for _, tc := range tests {
		f, err := parseFailback(tc.policy)
		if err != nil {
			t.Fatalf("parseFailback(%q): %v", tc.policy, err)
		}
		if got := f.open(tc.minute); got != tc.want {
			t.Errorf("%q open at minute %d: got %v, want %v", tc.policy, tc.minute, got, tc.want)
		}
	}
}

func TestHooksTimeoutDuration(t *testing.T) {
	for _, tc := range []struct {
		timeout string
		want    time.Duration
	}{{"", DefaultHookTimeout}, {"5s", 5 * time.Second}, {"2m", 2 * time.Minute}, {"bad", DefaultHookTimeout}} {
		if got := (Hooks{Timeout: tc.timeout}).TimeoutDuration(); got != tc.want {
			t.Errorf("Hooks{Timeout: %q}.TimeoutDuration(): got %v, want %v", tc.timeout, got, tc.want)
		}
	}
}
