package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
)

// TestGroupHooks: a group's online hook starts a TCP service once every member is up
// on its node; the client reaches it through a member address across a move; the
// offline hook stops it on the old node; a failing group online hook (on n3) moves the
// whole group on.
func TestGroupHooks(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	dir := t.TempDir()
	online := filepath.Join(dir, "online.sh")
	offline := filepath.Join(dir, "offline.sh")
	os.WriteFile(online, []byte(`#!/bin/sh
echo "group $CLUSTERD_GROUP online on $CLUSTERD_NODE: $CLUSTERD_RESOURCES = $CLUSTERD_ADDRESSES"
case "$CLUSTERD_NODE" in n3) echo "refusing on n3" >&2; exit 7 ;; esac
echo "$CLUSTERD_ADDRESSES" >> `+dir+`/runs.$CLUSTERD_NODE
setsid python3 -m http.server --bind 0.0.0.0 8080 >/dev/null 2>&1 &
echo $! > `+dir+`/http.$CLUSTERD_NODE.pid
`), 0o755)
	os.WriteFile(offline, []byte(`#!/bin/sh
echo "group $CLUSTERD_GROUP offline on $CLUSTERD_NODE"
kill $(cat `+dir+`/http.$CLUSTERD_NODE.pid) 2>/dev/null
rm -f `+dir+`/http.$CLUSTERD_NODE.pid
`), 0o755)
	for i, name := range []string{"web-a", "web-b"} {
		args := []string{"resource", "add", name, "--address", "198.18.1.3" + string(rune('0'+i)) + "/16", "--interface", "eth0", "--group", "web"}
		if i == 0 {
			args = append(args, "--preferred-owner", "n1")
		}
		if out, err := c.CLI(ctx, n1, args...); err != nil {
			t.Fatalf("resource add %s: %v\n%s", name, err, out)
		}
	}
	// Both members first: a group's online hook runs once every member in the state
	// is up, so with one member added it would already run for that one.
	if _, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 2 }); err != nil {
		t.Fatal(err)
	}
	if out, err := c.CLI(ctx, n1, "group", "set", "web", "--hook-online", online, "--hook-offline", offline, "--hook-timeout", "5s"); err != nil {
		t.Fatalf("group set: %v\n%s", err, out)
	}
	get := func(addr string) error { return clientGet(ctx, c, addr) }
	for _, addr := range []string{"198.18.1.30", "198.18.1.31"} {
		if err := get(addr); err != nil {
			t.Fatalf("service started by the group online hook not reachable through %s: %v", addr, err)
		}
	}
	st, _ := c.WaitStatus(ctx, n1, 5*time.Second, func(st api.Status) bool { return len(cluster.Owners(st)) == 2 })
	first := cluster.Owners(st)["web-a"]
	runs, _ := os.ReadFile(filepath.Join(dir, "runs."+first))
	if got := strings.TrimSpace(string(runs)); got != "198.18.1.30 198.18.1.31" {
		t.Errorf("group online hook runs on %s: got %q, want exactly one run naming both addresses", first, got)
	}

	// A graceful move: offline on the old node, online once on the new one.
	to := "n2"
	if first == "n2" {
		to = "n1"
	}
	if out, err := c.CLI(ctx, n1, "move", "web-a", "--to", to, "--wait"); err != nil {
		t.Fatalf("move: %v\n%s", err, out)
	}
	if err := get("198.18.1.31"); err != nil {
		t.Fatalf("service not reachable after the group moved to %s: %v", to, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "http."+first+".pid")); err == nil {
		t.Errorf("group offline hook did not stop the service on %s", first)
	}

	// A failing group online hook (n3 refuses) moves the whole group on.
	if _, err := c.CLI(ctx, n1, "move", "web-a", "--to", "n3"); err != nil {
		t.Fatal(err)
	}
	st, err := c.WaitStatus(ctx, n1, 15*time.Second, func(st api.Status) bool {
		o := cluster.Owners(st)
		return o["web-a"] != "" && o["web-a"] != "n3" && o["web-b"] == o["web-a"]
	})
	if err != nil {
		t.Fatalf("failing group online hook on n3 did not move the group away: %v (%+v)", err, st.Resources)
	}
	if log := readLog(t, c.Agent(3, cluster.Options{})); !strings.Contains(log, "refusing on n3") || !strings.Contains(log, "of group") {
		t.Errorf("n3's log lacks the group hook's output and failure")
	}
	if err := get("198.18.1.30"); err != nil {
		t.Fatalf("service not reachable after the failed group hook moved the group to %s: %v", cluster.Owners(st)["web-a"], err)
	}
}
