package agent

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
)

func TestPlanApply(t *testing.T) {
	res := func(name, addr, group string) consensus.Resource {
		return consensus.Resource{Name: name, Address: netip.MustParsePrefix(addr), Interface: "eth0", Group: group}
	}
	grp := func(name, online string) consensus.Group {
		return consensus.Group{Name: name, Hooks: &consensus.Hooks{Online: online}}
	}
	webA, webB, dbA := res("web-a", "198.18.1.10/16", "web"), res("web-b", "198.18.1.11/16", "web"), res("db-a", "198.18.1.20/16", "db")
	st := consensus.NewState()
	st.Resources = map[string]consensus.Resource{"web-a": webA, "db-a": dbA}
	st.Groups = map[string]consensus.Group{"web": grp("web", "/bin/up"), "db": grp("db", "/bin/db-up")}
	plain := consensus.NewState()
	plain.Resources = map[string]consensus.Resource{"web-a": webA}
	plain.Groups = map[string]consensus.Group{"web": grp("web", "/bin/up")}
	names := func(created, updated, unchanged, removed []string) api.ApplyNames {
		n := emptyNames()
		n.Created, n.Updated = append(n.Created, created...), append(n.Updated, updated...)
		n.Unchanged, n.Removed = append(n.Unchanged, unchanged...), append(n.Removed, removed...)
		return n
	}
	tests := []struct {
		name       string
		st         consensus.State
		rs         []consensus.Resource
		gs         []consensus.Group
		prune      bool
		want       consensus.Changes
		wantRes    api.ApplyNames
		wantGroups api.ApplyNames
		wantErr    string // substring; "" for none
	}{
		{name: "same file again: nothing", st: plain, rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("web", "/bin/up")},
			wantRes: names(nil, nil, []string{"web-a"}, nil), wantGroups: names(nil, nil, []string{"web"}, nil)},
		{name: "new member, changed hook",
			st: plain, rs: []consensus.Resource{webA, webB}, gs: []consensus.Group{grp("web", "/bin/up2")},
			want:    consensus.Changes{Resources: []consensus.Resource{webB}, Groups: []consensus.Group{grp("web", "/bin/up2")}},
			wantRes: names([]string{"web-b"}, nil, []string{"web-a"}, nil), wantGroups: names(nil, []string{"web"}, nil, nil)},
		{name: "new group", st: consensus.NewState(), rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("web", "/bin/up")},
			want:    consensus.Changes{Resources: []consensus.Resource{webA}, Groups: []consensus.Group{grp("web", "/bin/up")}},
			wantRes: names([]string{"web-a"}, nil, nil, nil), wantGroups: names([]string{"web"}, nil, nil, nil)},
		{name: "prune with groups removes groups and resources not listed",
			st: st, rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("web", "/bin/up")}, prune: true,
			want:    consensus.Changes{Delete: []string{"db-a"}, DeleteGroups: []string{"db"}},
			wantRes: names(nil, nil, []string{"web-a"}, []string{"db-a"}), wantGroups: names(nil, nil, []string{"web"}, []string{"db"})},
		{name: "prune without groups leaves the group settings alone",
			st: st, rs: []consensus.Resource{webA}, prune: true,
			want:    consensus.Changes{Delete: []string{"db-a"}},
			wantRes: names(nil, nil, []string{"web-a"}, []string{"db-a"}), wantGroups: names(nil, nil, nil, nil)},
		{name: "without prune nothing is removed", st: st, rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("web", "/bin/up")},
			wantRes: names(nil, nil, []string{"web-a"}, nil), wantGroups: names(nil, nil, []string{"web"}, nil)},
		{name: "a group whose members are only in the cluster", st: st, gs: []consensus.Group{grp("db", "/bin/db-up2")},
			want:    consensus.Changes{Groups: []consensus.Group{grp("db", "/bin/db-up2")}},
			wantRes: names(nil, nil, nil, nil), wantGroups: names(nil, []string{"db"}, nil, nil)},
		{name: "a group without members", st: st, rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("wbe", "/bin/up")},
			wantErr: `group "wbe" has no member: no resource in the file or the cluster has group = "wbe"`},
		{name: "a group whose members --prune removes", st: st, rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("db", "/bin/up")}, prune: true,
			wantErr: `group "db" has no member: no resource in the file has group = "db" (--prune removes the cluster's others)`},
		{name: "the message names the groups in use", st: plain, rs: []consensus.Resource{webA}, gs: []consensus.Group{grp("wbe", "/bin/up")},
			wantErr: "or correct the name; the resources' groups are web)"},
		{name: "group twice", st: st, gs: []consensus.Group{grp("web", "/bin/up"), grp("db", "/bin/up"), grp("web", "/bin/up")},
			wantErr: `group "web" is declared twice ([[group]] tables 1 and 3)`},
		{name: "resource twice", st: st, rs: []consensus.Resource{webA, webB, webA},
			wantErr: `resource "web-a" is declared twice ([[resource]] tables 1 and 3)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planApply(tc.st, tc.rs, tc.gs, tc.prune)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, api.ErrInvalid) {
					t.Fatalf("got error %v, want ErrInvalid containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(p.changes, tc.want) {
				t.Errorf("changes:\n got %+v\nwant %+v", p.changes, tc.want)
			}
			if !reflect.DeepEqual(p.result.ApplyNames, tc.wantRes) || !reflect.DeepEqual(p.result.Groups, tc.wantGroups) {
				t.Errorf("result: got resources %+v groups %+v, want %+v %+v", p.result.ApplyNames, p.result.Groups, tc.wantRes, tc.wantGroups)
			}
			if got := p.empty(); got != reflect.DeepEqual(tc.want, consensus.Changes{}) {
				t.Errorf("empty() = %v for changes %+v", got, tc.want)
			}
		})
	}
}
