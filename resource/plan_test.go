package resource

import (
	"fmt"
	"net/netip"
	"testing"
)

func addr(s string) Address { return Address{Prefix: netip.MustParsePrefix(s), Interface: "eth0"} }

func addrs(ss ...string) []Address {
	out := []Address{}
	for _, s := range ss {
		out = append(out, addr(s))
	}
	return out
}

// kern builds a kernel listing; a leading "+" marks a secondary.
func kern(ss ...string) map[string][]KernelAddr {
	var out []KernelAddr
	for _, s := range ss {
		sec := s[0] == '+'
		if sec {
			s = s[1:]
		}
		out = append(out, KernelAddr{Prefix: netip.MustParsePrefix(s), Secondary: sec})
	}
	return map[string][]KernelAddr{"eth0": out}
}

func TestMakePlan(t *testing.T) {
	tests := []struct {
		name                        string
		kernel                      map[string][]KernelAddr
		owned, want                 []Address
		remove, demote, add, foreig []Address
	}{
		{
			name:   "fresh add next to the node address",
			kernel: kern("198.18.0.101/16"),
			want:   addrs("198.18.1.10/16", "198.18.0.20/16"),
			add:    addrs("198.18.0.20/16", "198.18.1.10/16"),
		},
		{
			name:   "nothing to do",
			kernel: kern("198.18.0.101/16", "+198.18.1.10/16"),
			owned:  addrs("198.18.1.10/16"),
			want:   addrs("198.18.1.10/16"),
		},
		{
			name:   "Q287032: remove the primary last, secondaries in reverse order first",
			kernel: kern("198.19.1.10/24", "+198.19.1.11/24", "+198.19.1.12/24", "198.19.2.10/24"),
			owned:  addrs("198.19.1.10/24", "198.19.1.11/24", "198.19.1.12/24", "198.19.2.10/24"),
			remove: addrs("198.19.1.12/24", "198.19.1.11/24", "198.19.2.10/24", "198.19.1.10/24"),
		},
		{
			name:   "remove only the primary; its secondaries stay (promoted by the kernel)",
			kernel: kern("198.19.1.10/24", "+198.19.1.11/24", "+198.19.1.12/24"),
			owned:  addrs("198.19.1.10/24", "198.19.1.11/24", "198.19.1.12/24"),
			want:   addrs("198.19.1.11/24", "198.19.1.12/24"),
			remove: addrs("198.19.1.10/24"),
		},
		{
			name:   "never remove what clusterd did not add",
			kernel: kern("198.18.0.101/16", "+198.18.0.50/16"),
			owned:  nil,
			want:   nil,
		},
		{
			name:   "a wanted address configured by someone else is reported, not adopted",
			kernel: kern("198.18.0.101/16", "+198.18.0.50/16"),
			want:   addrs("198.18.0.50/16"),
			foreig: addrs("198.18.0.50/16"),
			add:    nil,
			remove: nil,
			demote: nil,
			owned:  nil,
		},
		{
			name:   "changed prefix length: remove and add again",
			kernel: kern("198.18.0.101/16", "+198.18.1.10/16"),
			owned:  addrs("198.18.1.10/16"),
			want:   addrs("198.18.1.10/24"),
			remove: addrs("198.18.1.10/16"),
			add:    addrs("198.18.1.10/24"),
		},
		{
			name:   "cluster address became primary over the node's own address: demote",
			kernel: kern("198.18.1.10/16", "+198.18.0.101/16"),
			owned:  addrs("198.18.1.10/16"),
			want:   addrs("198.18.1.10/16"),
			demote: addrs("198.18.1.10/16"),
		},
		{
			name:   "cluster primary with only cluster secondaries is fine",
			kernel: kern("198.19.1.10/24", "+198.19.1.11/24"),
			owned:  addrs("198.19.1.10/24", "198.19.1.11/24"),
			want:   addrs("198.19.1.10/24", "198.19.1.11/24"),
		},
		{
			name:   "owned but gone from the kernel (drift): add again",
			kernel: kern("198.18.0.101/16"),
			owned:  addrs("198.18.1.10/16"),
			want:   addrs("198.18.1.10/16"),
			add:    addrs("198.18.1.10/16"),
		},
		{
			name:   "IPv6",
			kernel: kern("2001:2::101/64", "2001:2::10/64"),
			owned:  addrs("2001:2::10/64"),
			want:   addrs("2001:2::11/64"),
			remove: addrs("2001:2::10/64"),
			add:    addrs("2001:2::11/64"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := MakePlan(tt.kernel, tt.owned, tt.want)
			check := func(what string, got, want []Address) {
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s: got %v, want %v (kernel %v, owned %v, want %v)", what, got, want, tt.kernel, tt.owned, tt.want)
				}
			}
			check("remove", got.Remove, tt.remove)
			check("demote", got.Demote, tt.demote)
			check("add", got.Add, tt.add)
			check("foreign", got.Foreign, tt.foreig)
		})
	}
}

func TestValidateAddress(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{"198.18.1.10/24", true},
		{"198.18.1.10/32", true},
		{"2001:2::10/64", true},
		{"198.18.1.0/24", false},
		{"198.18.1.255/24", false},
		{"127.0.0.2/8", false},
		{"224.0.0.1/4", false},
		{"fe80::1/64", false},
		{"0.0.0.0/0", false},
	}
	for _, tt := range tests {
		err := ValidateAddress(netip.MustParsePrefix(tt.in))
		if (err == nil) != tt.ok {
			t.Errorf("ValidateAddress(%s) = %v, want ok=%v", tt.in, err, tt.ok)
		}
	}
}
