package lab

import (
	"net/netip"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		name  string
		id    string
		owner int
		role  string
		ok    bool
	}{
		{name: "cdlab-4242-9f3a-n1", id: "4242-9f3a", owner: 4242, role: "n1", ok: true},
		{name: "cdlab-4242-9f3a-sw", id: "4242-9f3a", owner: 4242, role: "sw", ok: true},
		{name: "cdlab-m-9f3a-client", id: "m-9f3a", owner: 0, role: "client", ok: true},
		{name: "cdlab-x-9f3a-wins", id: "x-9f3a", owner: -1, role: "wins", ok: true},
		{name: "cdlab-0-9f3a-n1", id: "0-9f3a", owner: -1, role: "n1", ok: true},
		{name: "cdlab-9f3a-n1", id: "9f3a", owner: -1, role: "n1", ok: true},
		{name: "cdlab-junk", id: "junk", owner: -1, role: "", ok: true},
		{name: "cdres-4242-1", ok: false},
		{name: "other", ok: false},
	}
	for _, tt := range tests {
		id, owner, role, ok := parseName(tt.name)
		if id != tt.id || owner != tt.owner || role != tt.role || ok != tt.ok {
			t.Errorf("parseName(%q) = %q, %d, %q, %v; want %q, %d, %q, %v",
				tt.name, id, owner, role, ok, tt.id, tt.owner, tt.role, tt.ok)
		}
	}
}

func TestNameRoundTrip(t *testing.T) {
	for _, owner := range []string{"4242", manualOwner} {
		id, err := newID(owner)
		if err != nil {
			t.Fatal(err)
		}
		for _, role := range []string{roleSwitch, roleClient, roleWINS, "n1", "n154"} {
			name := nsName(id, role)
			gotID, _, gotRole, ok := parseName(name)
			if gotID != id || gotRole != role || !ok {
				t.Errorf("parseName(%q) = %q, %q, %v; want %q, %q, true", name, gotID, gotRole, ok, id, role)
			}
		}
	}
}

func TestHostAddressing(t *testing.T) {
	l := &Lab{id: "4242-9f3a", opts: Options{Nodes: MaxNodes, Client: true, WINS: true}}
	l.plan()
	tests := []struct {
		host        *Host
		name, port  string
		addr, addr6 string
		mac         string
	}{
		{l.WINS(), "cdlab-4242-9f3a-wins", "wins", "198.18.0.1/16", "2001:2::1/64", "02:00:c6:12:00:01"},
		{l.Client(), "cdlab-4242-9f3a-client", "client", "198.18.0.2/16", "2001:2::2/64", "02:00:c6:12:00:02"},
		{l.Node(1), "cdlab-4242-9f3a-n1", "n1", "198.18.0.101/16", "2001:2::101/64", "02:00:c6:12:00:65"},
		{l.Node(12), "cdlab-4242-9f3a-n12", "n12", "198.18.0.112/16", "2001:2::112/64", "02:00:c6:12:00:70"},
		{l.Node(MaxNodes), "cdlab-4242-9f3a-n154", "n154", "198.18.0.254/16", "2001:2::254/64", "02:00:c6:12:00:fe"},
	}
	for _, tt := range tests {
		h := tt.host
		if h.Name != tt.name || h.port != tt.port || h.Link != "eth0" ||
			h.Addr != netip.MustParsePrefix(tt.addr) || h.Addr6 != netip.MustParsePrefix(tt.addr6) || h.MAC.String() != tt.mac {
			t.Errorf("host = %s port %s link %s %v %v %v; want %s port %s link eth0 %s %s %s",
				h.Name, h.port, h.Link, h.Addr, h.Addr6, h.MAC, tt.name, tt.port, tt.addr, tt.addr6, tt.mac)
		}
		if len(h.port) > 15 {
			t.Errorf("switch port %q is longer than IFNAMSIZ-1 (15)", h.port)
		}
		if !LAN.Contains(h.Addr.Addr()) || !LAN6.Contains(h.Addr6.Addr()) {
			t.Errorf("%s: %v / %v outside %v / %v", h.Name, h.Addr, h.Addr6, LAN, LAN6)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"one node", Options{Nodes: 1}, true},
		{"client only", Options{Client: true}, true},
		{"wins only", Options{WINS: true}, true},
		{"max nodes", Options{Nodes: MaxNodes}, true},
		{"no hosts", Options{}, false},
		{"negative", Options{Nodes: -1, Client: true}, false},
		{"too many", Options{Nodes: MaxNodes + 1}, false},
	}
	for _, tt := range tests {
		if err := tt.opts.validate(); (err == nil) != tt.ok {
			t.Errorf("%s: validate(%+v) = %v, want ok=%v", tt.name, tt.opts, err, tt.ok)
		}
	}
}
