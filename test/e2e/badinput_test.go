package e2e

import (
	"context"
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestBadInput: every bad request gets a clear error naming the problem and the fix,
// and changes nothing (neither the replicated state nor the kernel).
func TestBadInput(t *testing.T) {
	ctx := context.Background()
	c, a := single(t)
	if _, err := c.CLI(ctx, a, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0"); err != nil {
		t.Fatal(err)
	}
	wantAddrs := []string{"198.18.0.101/16", "198.18.1.10/16", "2001:2::101/64"}
	waitAddrs(t, a.Host, wantAddrs)
	before, err := c.CLI(ctx, a, "resource", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string // part of the message
	}{
		{"malformed prefix", []string{"resource", "add", "x", "--address", "198.18.1.300/16", "--interface", "eth0"}, 1, "not a valid ADDRESS/LENGTH"},
		{"not an address", []string{"resource", "add", "x", "--address", "web.example", "--interface", "eth0"}, 1, "not a valid ADDRESS/LENGTH"},
		{"no prefix length", []string{"resource", "add", "x", "--address", "198.18.1.11", "--interface", "eth0"}, 1, "has no prefix length"},
		{"unknown interface", []string{"resource", "add", "x", "--address", "198.18.1.11/16", "--interface", "eth9"}, 1, `interface "eth9" does not exist`},
		{"duplicate name", []string{"resource", "add", "web", "--address", "198.18.1.12/16", "--interface", "eth0"}, 1, `"web" already exists`},
		{"duplicate address", []string{"resource", "add", "y", "--address", "198.18.1.10/16", "--interface", "eth0"}, 1, "already used by resource"},
		{"duplicate address, other length", []string{"resource", "add", "y", "--address", "198.18.1.10/32", "--interface", "eth0"}, 1, "already used by resource"},
		{"node's own address", []string{"resource", "add", "z", "--address", "198.18.0.101/16", "--interface", "eth0"}, 1, "own address"},
		{"node's own IPv6 address", []string{"resource", "add", "z", "--address", "2001:2::101/64", "--interface", "eth0"}, 1, "own address"},
		{"subnet split", []string{"resource", "add", "z", "--address", "198.18.1.11/24", "--interface", "eth0"}, 1, "use 198.18.1.11/16"},
		{"network address", []string{"resource", "add", "z", "--address", "198.19.1.0/24", "--interface", "eth0"}, 1, "network address"},
		{"broadcast address", []string{"resource", "add", "z", "--address", "198.19.1.255/24", "--interface", "eth0"}, 1, "broadcast address"},
		{"loopback", []string{"resource", "add", "z", "--address", "127.0.0.5/8", "--interface", "eth0"}, 1, "cannot be a cluster address"},
		{"NetBIOS name too long", []string{"resource", "add", "z", "--address", "198.18.1.11/16", "--interface", "eth0", "--netbios-name", "ABCDEFGHIJKLMNOPQ"}, 1, "limit 15"},
		{"NetBIOS bad suffix", []string{"resource", "add", "z", "--address", "198.18.1.11/16", "--interface", "eth0", "--netbios-name", "FILESRV<2g>"}, 1, "not two hex digits"},
		{"bad resource name", []string{"resource", "add", "Bad Name!", "--address", "198.18.1.11/16", "--interface", "eth0"}, 1, "Bad Name!"},
		{"bad failback", []string{"resource", "add", "z", "--address", "198.18.1.11/16", "--interface", "eth0", "--failback", "sometimes"}, 1, "sometimes"},
		{"missing flags", []string{"resource", "add", "z"}, 2, "needs --address"},
		{"unknown flag", []string{"resource", "add", "z", "--adress", "198.18.1.11/16"}, 2, "adress"},
		{"remove unknown", []string{"resource", "remove", "nope"}, 1, `no resource "nope"`},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"bad output format", []string{"status", "-o", "yaml"}, 2, "-o table or -o json"},
		{"unreachable API", []string{"--api", "http://127.0.0.1:7999", "status"}, 3, "cannot reach the clusterd API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := c.CLI(ctx, a, tt.args...)
			var ee *exec.ExitError
			code := 0
			if errors.As(errors.Unwrap(err), &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				code = exitCodeOf(err)
			}
			if code != tt.code {
				t.Errorf("clusterd %v: exit code %d, want %d; output %q", tt.args, code, tt.code, out)
			}
			if !strings.Contains(out, tt.want) {
				t.Errorf("clusterd %v: output %q does not say %q", tt.args, out, tt.want)
			}
		})
	}
	after, err := c.CLI(ctx, a, "resource", "list", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if !equalIgnoringStateSince(before, after) {
		t.Errorf("bad input changed the resources:\nbefore %s\nafter %s", before, after)
	}
	if got := addrsOf(t, a.Host); !slices.Equal(got, sorted(wantAddrs)) {
		t.Errorf("bad input changed the kernel: got %v, want %v", got, wantAddrs)
	}
}

func equalIgnoringStateSince(a, b string) bool { return strings.TrimSpace(a) == strings.TrimSpace(b) }

// exitCodeOf reads "exit N" from the harness's error text.
func exitCodeOf(err error) int {
	s := err.Error()
	i := strings.Index(s, ": exit ")
	if i < 0 {
		return -1
	}
	var n int
	for _, ch := range s[i+7:] {
		if ch < '0' || ch > '9' {
			break
		}
		n = n*10 + int(ch-'0')
	}
	return n
}
