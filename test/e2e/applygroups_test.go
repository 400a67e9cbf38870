package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
)

// TestApplyGroups: `apply -f` with [[group]] tables sets group hooks along with the
// members (a dry run first changes nothing), the group's online hook runs, the same
// file again changes nothing, bad group input changes nothing, and --prune removes
// what the file does not list: group settings only when the file has [[group]] tables.
func TestApplyGroups(t *testing.T) {
	ctx := context.Background()
	c, a := single(t)
	dir := t.TempDir()
	online := filepath.Join(dir, "online.sh")
	os.WriteFile(online, []byte("#!/bin/sh\necho \"$CLUSTERD_GROUP $CLUSTERD_RESOURCES\" >> "+dir+"/runs\n"), 0o755)
	file := filepath.Join(dir, "apply.toml")
	write := func(doc string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(want []string, args ...string) string {
		t.Helper()
		out, err := c.CLI(ctx, a, args...)
		if err != nil {
			t.Fatalf("clusterd %v: %v", args, err)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Fatalf("clusterd %v: output lacks %q:\n%s", args, w, out)
			}
		}
		return out
	}
	groups := func() []api.GroupRequest {
		t.Helper()
		var gs []api.GroupRequest
		if err := json.Unmarshal([]byte(run(nil, "group", "list", "-o", "json")), &gs); err != nil {
			t.Fatal(err)
		}
		return gs
	}
	member := func(name, addr string) string {
		return "[[resource]]\nname = \"" + name + "\"\naddress = \"" + addr + "\"\ninterface = \"eth0\"\ngroup = \"web\"\n\n"
	}
	webGroup := "[[group]]\nname = \"web\"\nhook_online = \"" + online + "\"\nhook_timeout = \"5s\"\n\n"
	full := member("web-a", "198.18.1.40/16") + member("web-b", "198.18.1.41/16") + webGroup
	write(full)

	run([]string{"would be created: group web", "groups: 1 created, 0 updated, 0 unchanged, 0 removed"}, "apply", "-f", file, "--dry-run")
	if gs := groups(); len(gs) != 0 {
		t.Fatalf("dry run wrote group settings: %+v", gs)
	}
	run([]string{"created: web-a", "created: group web", "2 created, 0 updated, 0 unchanged, 0 removed",
		"groups: 1 created, 0 updated, 0 unchanged, 0 removed"}, "apply", "-f", file)
	want := api.GroupRequest{Name: "web", HookOnline: online, HookTimeout: "5s"}
	if gs := groups(); len(gs) != 1 || gs[0] != want {
		t.Fatalf("group list after apply: got %+v, want [%+v]", gs, want)
	}
	runs := filepath.Join(dir, "runs")
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(runs)
		if got := strings.TrimSpace(string(b)); got == "web web-a web-b" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("group online hook set by apply: ran %q, want once for web with web-a and web-b", got)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The same file again: nothing to commit.
	run([]string{"0 created, 0 updated, 2 unchanged, 0 removed", "groups: 0 created, 0 updated, 1 unchanged, 0 removed"}, "apply", "-f", file)
	var res api.ApplyResult
	if err := json.Unmarshal([]byte(run(nil, "apply", "-f", file, "-o", "json")), &res); err != nil {
		t.Fatal(err)
	}
	if res.Index != 0 || len(res.Unchanged) != 2 || len(res.Groups.Unchanged) != 1 {
		t.Errorf("third apply of the same file: got %+v, want nothing committed (index 0), all unchanged", res)
	}

	// Bad group input changes nothing and says what to fix.
	for _, tc := range []struct{ name, doc, want string }{
		{"group without members", full + "[[group]]\nname = \"wbe\"\nhook_online = \"" + online + "\"\n",
			`group "wbe" has no member: no resource in the file has group = "wbe"`},
		{"group twice", full + webGroup, `group "web" is declared twice ([[group]] tables 1 and 2)`},
		{"misspelt key", full + "[[group]]\nname = \"db\"\nhook_onlin = \"" + online + "\"\n", `apply.toml:20: unknown key "group.hook_onlin"`},
		{"relative hook", member("web-a", "198.18.1.40/16") + "[[group]]\nname = \"web\"\nhook_online = \"up.sh\"\n", `hooks.online "up.sh"`},
	} {
		write(tc.doc)
		out, err := c.CLI(ctx, a, "apply", "-f", file, "--prune")
		if err == nil || exitCodeOf(err) != 1 || !strings.Contains(out, tc.want) {
			t.Errorf("%s: got %v, want exit 1 saying %q; output:\n%s", tc.name, err, tc.want, out)
		}
	}
	if gs := groups(); len(gs) != 1 || gs[0] != want {
		t.Fatalf("bad input changed the group settings: got %+v, want [%+v]", gs, want)
	}

	// --prune: without [[group]] tables the settings stay; with them, unlisted ones go.
	run(nil, "group", "set", "spare", "--hook-failed", online)
	write(member("web-a", "198.18.1.40/16"))
	run([]string{"removed: web-b", "0 created, 0 updated, 1 unchanged, 1 removed"}, "apply", "-f", file, "--prune")
	if gs := groups(); len(gs) != 2 {
		t.Fatalf("--prune of a file without [[group]] tables changed the group settings: %+v", gs)
	}
	write(member("web-a", "198.18.1.40/16") + webGroup)
	run([]string{"removed: group spare", "groups: 0 created, 0 updated, 1 unchanged, 1 removed"}, "apply", "-f", file, "--prune")
	if gs := groups(); len(gs) != 1 || gs[0] != want {
		t.Fatalf("group list after --prune: got %+v, want [%+v]", gs, want)
	}
}
