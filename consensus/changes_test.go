package consensus

import (
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestFSMApplyChanges(t *testing.T) {
	webHooks := Group{Name: "web", Hooks: &Hooks{Online: "/usr/local/lib/clusterd/web-up"}}
	dbHooks := Group{Name: "db", Hooks: &Hooks{Offline: "/usr/local/lib/clusterd/db-down"}}
	member := func(name, addr, group string) Resource {
		r := vip(name, addr)
		r.Group = group
		return r
	}
	base := []Command{ // at indexes 1, 2, ...
		PutNode(Node{ID: "n1"}),
		ApplyResources([]Resource{vip("old", "198.18.1.9/24"), member("db-a", "198.18.1.20/24", "db")}),
		PutGroup(dbHooks),
		Assign(Assignment{Resource: "old", Node: "n1"}),
	}
	tests := []struct {
		name          string
		ch            Changes
		wantResources []string // sorted
		wantGroups    map[string]Group
		wantErr       error
		wantMsg       string // substring of the error
	}{
		{name: "resources and a group in one entry",
			ch:            Changes{Resources: []Resource{member("web-a", "198.18.1.10/24", "web")}, Groups: []Group{webHooks}},
			wantResources: []string{"db-a", "old", "web-a"}, wantGroups: map[string]Group{"db": dbHooks, "web": webHooks}},
		{name: "prune frees the address it reuses",
			ch:            Changes{Resources: []Resource{member("web-a", "198.18.1.9/24", "web")}, Delete: []string{"old"}, Groups: []Group{webHooks}},
			wantResources: []string{"db-a", "web-a"}, wantGroups: map[string]Group{"db": dbHooks, "web": webHooks}},
		{name: "replace one group, delete another",
			ch:            Changes{Groups: []Group{webHooks}, DeleteGroups: []string{"db"}},
			wantResources: []string{"db-a", "old"}, wantGroups: map[string]Group{"web": webHooks}},
		{name: "address taken by a resource kept",
			ch:      Changes{Resources: []Resource{vip("web-a", "198.18.1.20/32")}, Groups: []Group{webHooks}},
			wantErr: ErrDuplicateAddress, wantMsg: `"db-a"`},
		{name: "deleting an unknown resource",
			ch:      Changes{Groups: []Group{webHooks}, Delete: []string{"nope"}},
			wantErr: ErrNotFound, wantMsg: `"nope"`},
		{name: "deleting an unknown group",
			ch:      Changes{Resources: []Resource{vip("web-a", "198.18.1.10/24")}, DeleteGroups: []string{"nope"}},
			wantErr: ErrNotFound, wantMsg: `group "nope"`},
		{name: "group twice",
			ch:      Changes{Groups: []Group{webHooks, webHooks}},
			wantErr: ErrDuplicateName, wantMsg: `group "web" appears twice`},
		{name: "group set and deleted",
			ch:      Changes{Groups: []Group{dbHooks, webHooks}, DeleteGroups: []string{"db"}},
			wantErr: ErrDuplicateName, wantMsg: `group "db" is both`},
		{name: "resource put and deleted",
			ch:      Changes{Resources: []Resource{vip("old", "198.18.1.9/24")}, Delete: []string{"old"}, Groups: []Group{webHooks}},
			wantErr: ErrDuplicateName, wantMsg: `resource "old" is both`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM()
			for i, c := range base {
				if err := applyAt(t, f, uint64(i+1), c); err != nil {
					t.Fatalf("base command %d: %v", i+1, err)
				}
			}
			before, _ := f.read()
			cmd := ApplyChanges(tc.ch)
			if cmd.Op != OpApplyChanges {
				t.Fatalf("ApplyChanges(%+v) wrote op %s, want %s (the test needs the version-4 op)", tc.ch, cmd.Op, OpApplyChanges)
			}
			index := uint64(len(base) + 1)
			err := applyAt(t, f, index, cmd)
			if !errors.Is(err, tc.wantErr) || (err != nil && !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("got error %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
			}
			got, _ := f.read()
			if tc.wantErr != nil {
				if !reflect.DeepEqual(got, before) {
					t.Errorf("a refused apply changed the state:\n got %+v\nwant %+v", got, before)
				}
				return
			}
			if names := slices.Sorted(maps.Keys(got.Resources)); !reflect.DeepEqual(names, tc.wantResources) {
				t.Errorf("resources: got %v, want %v", names, tc.wantResources)
			}
			if !reflect.DeepEqual(got.Groups, tc.wantGroups) {
				t.Errorf("groups: got %+v, want %+v", got.Groups, tc.wantGroups)
			}
			if got.Revision != index {
				t.Errorf("revision: got %d, want %d", got.Revision, index)
			}
			for _, n := range tc.ch.Delete {
				if _, ok := got.Assignments[n]; ok {
					t.Errorf("deleted resource %q kept its assignment", n)
				}
			}
			if want := got.addressIndex(); !reflect.DeepEqual(f.addrs, want) {
				t.Errorf("address index: got %v, want %v", f.addrs, want)
			}
		})
	}
}

func TestApplyChangesWritesTheLowestVersion(t *testing.T) {
	plain := vip("web", "198.18.1.10/24")
	hooked := plain
	hooked.Hooks = &Hooks{Online: "/usr/local/bin/web-up"}
	g := Group{Name: "web", Hooks: &Hooks{Online: "/bin/up"}}
	tests := []struct {
		name    string
		ch      Changes
		wantOp  Op
		wantVer int
	}{
		{"plain resources", Changes{Resources: []Resource{plain}}, OpApplyResources, 1},
		{"hooked resources", Changes{Resources: []Resource{hooked}}, OpApplyResources, 2},
		{"nothing", Changes{}, OpApplyResources, 1},
		{"deletions only", Changes{Delete: []string{"old"}}, OpDeleteResource, 1},
		{"one group", Changes{Groups: []Group{g}}, OpPutGroup, 3},
		{"group deletions only", Changes{DeleteGroups: []string{"db"}}, OpDeleteGroup, 3},
		{"two groups", Changes{Groups: []Group{g, {Name: "db", Hooks: g.Hooks}}}, OpApplyChanges, 4},
		{"resources and a group", Changes{Resources: []Resource{plain}, Groups: []Group{g}}, OpApplyChanges, 4},
		{"changes and deletions", Changes{Resources: []Resource{plain}, Delete: []string{"old"}}, OpApplyChanges, 4},
		{"group set, another deleted", Changes{Groups: []Group{g}, DeleteGroups: []string{"db"}}, OpApplyChanges, 4},
	}
	for _, tc := range tests {
		c := ApplyChanges(tc.ch)
		if c.Op != tc.wantOp || c.Version != tc.wantVer {
			t.Errorf("%s: got %s version %d, want %s version %d", tc.name, c.Op, c.Version, tc.wantOp, tc.wantVer)
		}
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", tc.name, err)
		}
		data, _ := c.encode()
		if got, err := decodeCommand(data); err != nil || !reflect.DeepEqual(got, c) {
			t.Errorf("%s: round trip of %s: got %+v, %v", tc.name, data, got, err)
		}
	}
}

// A version-3 binary halts on a version-4 entry (TestNewerCommandHaltsEveryReplica);
// here: an apply_changes can only be a version-4 entry, and no other op carries its
// group fields, so no replica drops group data it did not understand.
func TestApplyChangesNeedsVersion4(t *testing.T) {
	g := Group{Name: "web", Hooks: &Hooks{Online: "/bin/up"}}
	c := ApplyChanges(Changes{Resources: []Resource{vip("web-a", "198.18.1.10/24")}, Groups: []Group{g}})
	old := c
	old.Version = 3
	data, _ := old.encode()
	if _, err := decodeCommand(data); !errors.Is(err, ErrUnsupportedCommand) || !strings.Contains(err.Error(), "introduced in command version 4") {
		t.Errorf("apply_changes in a version-3 entry: got %v, want ErrUnsupportedCommand naming version 4", err)
	}
	for _, tc := range []struct {
		name string
		cmd  Command
		want string
	}{
		{"apply_resources carrying groups", Command{Version: 4, Op: OpApplyResources, Resources: c.Resources, Groups: c.Groups}, "carries group records"},
		{"delete_group carrying group_names", Command{Version: 4, Op: OpDeleteGroup, Names: []string{"a"}, GroupNames: []string{"b"}}, "names groups to delete"},
		{"empty group name", Command{Version: 4, Op: OpApplyChanges, Groups: c.Groups, GroupNames: []string{""}}, "empty group"},
		{"empty resource name", Command{Version: 4, Op: OpApplyChanges, Groups: c.Groups, Names: []string{""}}, "empty resource"},
		{"invalid group", Command{Version: 4, Op: OpApplyChanges, Groups: []Group{{Name: "web"}}, Names: []string{"x"}}, "has no settings"},
		{"invalid resource", Command{Version: 4, Op: OpApplyChanges, Resources: []Resource{{Name: "x"}}, Groups: c.Groups}, `"x"`},
	} {
		if err := tc.cmd.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Validate = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}
