package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
)

// Cluster addresses start at 198.18.1.1: the lab's own hosts use 198.18.0.1–.254.
var firstAddr = netip.MustParseAddr("198.18.1.1")

// wl is one workload: n cluster addresses on eth0 in the lab's /16, one resource
// each, optionally with a NetBIOS interface registered with the lab's WINS server.
type wl struct {
	Addrs   []netip.Addr
	Names   []string // resource names, in the order of Addrs
	NetBIOS bool
}

func newWorkload(n int, netbios bool) wl {
	w := wl{Addrs: cluster.AddrRange(firstAddr, n), NetBIOS: netbios}
	for i := range w.Addrs {
		w.Names = append(w.Names, fmt.Sprintf("vip-%05d", i+1))
	}
	return w
}

// nbName is resource i's NetBIOS name (15 characters at most).
func nbName(i int) string { return fmt.Sprintf("NODE%04d", i+1) }

// applyFile renders the workload as `clusterd apply -f` input: one [[resource]]
// table per address.
func (w wl) applyFile() string {
	var b strings.Builder
	for i, a := range w.Addrs {
		fmt.Fprintf(&b, "[[resource]]\nname = %q\naddress = \"%s/16\"\ninterface = \"eth0\"\n", w.Names[i], a)
		if w.NetBIOS {
			fmt.Fprintf(&b, "netbios_names = [%q]\nwins = [\"198.18.0.1\"]\n", nbName(i))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// write writes the apply file and an empty one (for --prune) into dir.
func (w wl) write(dir string) (file, empty string, err error) {
	file, empty = filepath.Join(dir, "resources.toml"), filepath.Join(dir, "empty.toml")
	if err := os.WriteFile(file, []byte(w.applyFile()), 0o644); err != nil {
		return "", "", err
	}
	return file, empty, os.WriteFile(empty, nil, 0o644)
}

// statusCount counts the workload's resources in a status: listed at all, and
// online (with NetBIOS: online with every name registered).
type statusCount struct{ Listed, Online int }

func countStatus(st api.Status, names map[string]bool, netbios bool) statusCount {
	var c statusCount
	for _, r := range st.Resources {
		if !names[r.Name] {
			continue
		}
		c.Listed++
		if r.State != api.StateOnline {
			continue
		}
		ok := !netbios || len(r.NetBIOS) > 0
		for _, n := range r.NetBIOS {
			ok = ok && (!netbios || n.State == "registered")
		}
		if ok {
			c.Online++
		}
	}
	return c
}

// statusWait polls an agent's status (GET /v1/status, what `clusterd status` shows)
// every period until cond holds, and returns when the answer that satisfied it was
// received. A status of thousands of resources costs the agents real work, so the
// period is the figure's resolution, not a free parameter.
func statusWait(ctx context.Context, c *cluster.Cluster, a *cluster.Agent, limit, period time.Duration, cond func(api.Status) bool) (time.Time, api.Status, error) {
	cl := c.Client(a)
	cl.HTTP.Timeout = 5 * time.Second
	deadline := time.Now().Add(limit)
	var last api.Status
	var lastErr error
	for {
		st, err := cl.Status(ctx)
		if err == nil {
			last = st
			if cond(st) {
				return time.Now(), st, nil
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			return time.Time{}, last, fmt.Errorf("%w within %v (last status error: %v)", errTimeout, limit, lastErr)
		}
		select {
		case <-ctx.Done():
			return time.Time{}, last, ctx.Err()
		case <-time.After(period):
		}
	}
}

// states summarises a status for error messages: count per state and a sample reason.
func states(st api.Status, names map[string]bool) string {
	count := map[string]int{}
	reason := map[string]string{}
	for _, r := range st.Resources {
		if names[r.Name] {
			count[r.State]++
			if r.Reason != "" && reason[r.State] == "" {
				reason[r.State] = r.Reason
			}
		}
	}
	var parts []string
	for s, n := range count {
		p := fmt.Sprintf("%s %d", s, n)
		if reason[s] != "" {
			p += fmt.Sprintf(" (e.g. %q)", reason[s])
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, ", ")
}

func nameSet(names []string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func sortedStrings(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
