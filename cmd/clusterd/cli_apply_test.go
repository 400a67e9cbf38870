package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/health/api"
)

func TestParseApplyFile(t *testing.T) {
	const groupKeys = "(a [[group]] table's keys are name, hook_online, hook_offline, hook_failed, hook_timeout)"
	tests := []struct {
		name    string
		doc     string
		want    applyFile
		wantErr string // the message, or its start; "" for none
	}{
		{name: "resources and a group",
			doc: `[[resource]]
name = "web-a"
address = "198.18.1.10/16"
interface = "eth0"
group = "web"

[[group]]
name = "web"
hook_online = "/usr/local/lib/clusterd/web-start"
hook_timeout = "10s"
`,
			want: applyFile{
				Resource: []api.ResourceRequest{{Name: "web-a", Address: "198.18.1.10/16", Interface: "eth0", Group: "web"}},
				Group:    []api.GroupRequest{{Name: "web", HookOnline: "/usr/local/lib/clusterd/web-start", HookTimeout: "10s"}},
			}},
		{name: "groups only", doc: "[[group]]\nname = \"db\"\nhook_failed = \"/bin/page\"\n",
			want: applyFile{Group: []api.GroupRequest{{Name: "db", HookFailed: "/bin/page"}}}},
		{name: "empty file", doc: "", want: applyFile{}},
		{name: "misspelt group key",
			doc:     "[[group]]\nname = \"web\"\nhook_online = \"/bin/up\"\n\n[[group]]\nname = \"db\"\n  hook_onlin = \"/bin/up\" # typo\n",
			wantErr: `apply.toml:7: unknown key "group.hook_onlin" ` + groupKeys},
		{name: "nested hooks table the API does not take",
			doc:     "[[group]]\nname = \"web\"\nhooks.online = \"/bin/up\"\n",
			wantErr: `apply.toml:3: unknown key "group.hooks.online" ` + groupKeys},
		{name: "misspelt resource key",
			doc: "[[resource]]\nname = \"x\"\nadress = \"198.18.1.99/16\"\n",
			wantErr: `apply.toml:3: unknown key "resource.adress" (a [[resource]] table's keys are name, address, interface, ` +
				`preferred_owners, possible_owners, failback, group, netbios_names, wins, node_type, scope, offline, checks, ` +
				`hook_online, hook_offline, hook_failed, hook_timeout, on_quorum_loss)`},
		{name: "unknown table",
			doc:     "[[resource]]\nname = \"x\"\n\n[[groups]]\nname = \"web\"\n",
			wantErr: `apply.toml:4: unknown key "groups" (an apply file has only [[resource]] and [[group]] tables)`},
		{name: "top-level key", doc: "# flags are not keys\nprune = true\n",
			wantErr: `apply.toml:2: unknown key "prune" (an apply file has only [[resource]] and [[group]] tables)`},
		{name: "syntax error", doc: "[[group]]\nname = web\n",
			wantErr: `apply.toml: toml: line 2 (last key "group.name"): `},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseApplyFile("apply.toml", []byte(tc.doc))
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("parseApplyFile(%q):\n got error %v\nwant %s", tc.doc, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseApplyFile(%q): %v", tc.doc, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("parseApplyFile(%q):\n got %+v\nwant %+v", tc.doc, got, tc.want)
			}
		})
	}
}

func TestPrintApplied(t *testing.T) {
	n := api.ApplyNames{Created: []string{"web"}, Updated: []string{}, Unchanged: []string{"db"}, Removed: []string{"old"}}
	tests := []struct {
		name, prefix, kind, want string
	}{
		{"resources", "", "", "created: web\nremoved: old\n1 created, 0 updated, 1 unchanged, 1 removed\n"},
		{"groups, dry run", "would be ", "group ", "would be created: group web\nwould be removed: group old\ngroups: 1 created, 0 updated, 1 unchanged, 1 removed\n"},
	}
	for _, tc := range tests {
		var b strings.Builder
		printApplied(&globals{stdout: &b}, tc.prefix, tc.kind, n)
		if got := b.String(); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}
