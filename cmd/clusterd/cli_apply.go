package main

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/clusterd/clusterd/health/api"
)

const applyHelp = `Usage: clusterd apply -f FILE [--prune] [--dry-run]

Makes the resources and group settings FILE declares, in one raft entry (all or
none). One [[resource]] table per resource, with keys that mirror 'resource add':
name, address, interface, preferred_owners, possible_owners, failback, group,
netbios_names, wins, node_type, scope, offline, checks, hook_online, hook_offline,
hook_failed, hook_timeout, on_quorum_loss. One [[group]] table per group with
settings, with keys that mirror 'group set': name, hook_online, hook_offline,
hook_failed, hook_timeout (see 'clusterd group --help'); it needs at least one hook,
and a member: a resource with group = NAME in FILE or, without --prune, in the
cluster. on_quorum_loss = "keep" keeps an address on a node cut off from a majority
of the voters: two nodes may then hold it at once (see 'clusterd resource add
--help').

Idempotent: applying the same file twice changes nothing. --prune also removes the
resources FILE does not list and, if FILE has any [[group]] table, the group
settings it does not list; a file without [[group]] tables leaves group settings
alone (remove them with 'clusterd group remove'). An apply that sets group settings
or removes anything along with other changes is raft command version 4: upgrade
every node first. Example:

  [[resource]]
  name = "web-a"
  address = "198.18.1.10/16"
  interface = "eth0"
  group = "web"

  [[group]]
  name = "web"
  hook_online = "/usr/local/lib/clusterd/web-start"
  hook_offline = "/usr/local/lib/clusterd/web-stop"`

// applyFile is the TOML of `clusterd apply -f`.
type applyFile struct {
	Resource []api.ResourceRequest `toml:"resource"`
	Group    []api.GroupRequest    `toml:"group"`
}

func runApply(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "apply", applyHelp)
	file := fs.String("f", "", "TOML `FILE` to apply (required)")
	prune := fs.Bool("prune", false, "also remove resources the file does not list, and group settings if it has [[group]] tables")
	dry := fs.Bool("dry-run", false, "only print what would change")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("apply needs -f FILE")
	}
	b, err := os.ReadFile(*file)
	if err != nil {
		return err
	}
	f, err := parseApplyFile(*file, b)
	if err != nil {
		return err
	}
	res, err := g.client().Apply(ctx, api.ApplyRequest{Resources: f.Resource, Groups: f.Group, Prune: *prune, DryRun: *dry})
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, res)
	}
	prefix := ""
	if *dry {
		prefix = "would be "
	}
	printApplied(g, prefix, "", res.ApplyNames)
	if len(f.Group) > 0 {
		printApplied(g, prefix, "group ", res.Groups)
	}
	return nil
}

// printApplied prints one line per name that changed, then the counts.
func printApplied(g *globals, prefix, kind string, n api.ApplyNames) {
	for _, kv := range []struct {
		what  string
		names []string
	}{{"created", n.Created}, {"updated", n.Updated}, {"removed", n.Removed}} {
		for _, name := range kv.names {
			fmt.Fprintf(g.stdout, "%s%s: %s%s\n", prefix, kv.what, kind, name)
		}
	}
	counts := fmt.Sprintf("%d created, %d updated, %d unchanged, %d removed", len(n.Created), len(n.Updated), len(n.Unchanged), len(n.Removed))
	if kind != "" {
		counts = strings.TrimSpace(kind) + "s: " + counts
	}
	fmt.Fprintln(g.stdout, counts)
}

// parseApplyFile reads an apply file; name is the file's, for messages. A key or
// table it does not know is refused with its line and the keys it knows.
func parseApplyFile(name string, data []byte) (applyFile, error) {
	var f applyFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return applyFile{}, fmt.Errorf("%s: %w", name, err)
	}
	und := md.Undecoded()
	if len(und) == 0 {
		return f, nil
	}
	k := und[0]
	known := "an apply file has only [[resource]] and [[group]] tables"
	if len(k) > 1 {
		switch k[0] {
		case "resource":
			known = "a [[resource]] table's keys are " + tomlKeys(api.ResourceRequest{})
		case "group":
			known = "a [[group]] table's keys are " + tomlKeys(api.GroupRequest{})
		}
	}
	where := name
	if line := keyLine(string(data), k); line > 0 {
		where = fmt.Sprintf("%s:%d", name, line)
	}
	return applyFile{}, fmt.Errorf("%s: unknown key %q (%s)", where, k.String(), known)
}

// tomlKeys lists the toml keys of a struct's fields.
func tomlKeys(v any) string {
	t := reflect.TypeOf(v)
	keys := make([]string, 0, t.NumField())
	for i := range t.NumField() {
		if k := t.Field(i).Tag.Get("toml"); k != "" {
			keys = append(keys, k)
		}
	}
	return strings.Join(keys, ", ")
}

// keyLine returns the line (from 1) where key k is first set or opened as a table
// in doc, or 0 when it cannot tell (a quoted key, a key in an inline table).
func keyLine(doc string, k toml.Key) int {
	want := k.String()
	table := "" // the [table] or [[array table]] the line is in
	for i, line := range strings.Split(doc, "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			header, _, _ := strings.Cut(t, "#")
			table = strings.Trim(strings.TrimSpace(header), "[] \t")
			if table == want {
				return i + 1
			}
			continue
		}
		key, _, ok := strings.Cut(t, "=")
		if !ok || strings.HasPrefix(t, "#") {
			continue
		}
		full := strings.TrimSpace(key)
		if table != "" {
			full = table + "." + full
		}
		if full == want || strings.HasPrefix(full, want+".") {
			return i + 1
		}
	}
	return 0
}
