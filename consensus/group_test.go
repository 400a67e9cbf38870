package consensus

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestFSMGroups(t *testing.T) {
	web := Group{Name: "web", Hooks: &Hooks{Online: "/usr/local/lib/clusterd/web-up", Timeout: "5s"}}
	db := Group{Name: "db", Hooks: &Hooks{Offline: "/usr/local/lib/clusterd/db-down"}}
	tests := []struct {
		name    string
		cmds    []Command // at indexes 2, 3, ... after a put_node at 1
		want    map[string]Group
		wantRev uint64
		wantErr error // of the last command
	}{
		{name: "put", cmds: []Command{PutGroup(web)}, want: map[string]Group{"web": web}, wantRev: 2},
		{name: "replace", cmds: []Command{PutGroup(web), PutGroup(Group{Name: "web", Hooks: db.Hooks})},
			want: map[string]Group{"web": {Name: "web", Hooks: db.Hooks}}, wantRev: 3},
		{name: "delete", cmds: []Command{PutGroup(web), PutGroup(db), DeleteGroup("web")}, want: map[string]Group{"db": db}, wantRev: 4},
		{name: "delete unknown changes nothing", cmds: []Command{PutGroup(web), DeleteGroup("web", "nope")},
			want: map[string]Group{"web": web}, wantRev: 2, wantErr: ErrNotFound},
		{name: "restore with groups replaces them", cmds: []Command{PutGroup(web),
			RestoreState(StateDocument{State: State{Resources: map[string]Resource{}, Groups: map[string]Group{"db": db}}})},
			want: map[string]Group{"db": db}, wantRev: 3},
		{name: "version-2 restore keeps them", cmds: []Command{PutGroup(web), RestoreState(StateDocument{State: NewState()})},
			want: map[string]Group{"web": web}, wantRev: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM()
			if err := applyAt(t, f, 1, PutNode(Node{ID: "n1"})); err != nil {
				t.Fatal(err)
			}
			var err error
			for i, c := range tc.cmds {
				err = applyAt(t, f, uint64(i+2), c)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("last command: got error %v, want %v", err, tc.wantErr)
			}
			st, _ := f.read()
			if len(tc.want) == 0 && len(st.Groups) == 0 {
				return
			}
			if !reflect.DeepEqual(st.Groups, tc.want) || st.Revision != tc.wantRev {
				t.Errorf("got groups %+v at revision %d, want %+v at %d", st.Groups, st.Revision, tc.want, tc.wantRev)
			}
		})
	}
}

func TestGroupCommandsAreVersion3(t *testing.T) {
	g := Group{Name: "web", Hooks: &Hooks{Online: "/bin/up"}}
	for _, tc := range []struct {
		name string
		cmd  Command
		want int
	}{
		{"put_group", PutGroup(g), 3},
		{"delete_group", DeleteGroup("web"), 3},
		{"restore with groups", RestoreState(StateDocument{State: State{Groups: map[string]Group{"web": g}}}), 3},
		{"restore without groups", RestoreState(StateDocument{State: NewState()}), 2},
	} {
		if tc.cmd.Version != tc.want {
			t.Errorf("%s: got version %d, want %d", tc.name, tc.cmd.Version, tc.want)
		}
	}
	// A version-2 binary halts on them: simulated by decoding with the op's version lowered.
	old := PutGroup(g)
	old.Version = 2
	data, _ := old.encode()
	if _, err := decodeCommand(data); !errors.Is(err, ErrUnsupportedCommand) {
		t.Errorf("put_group in a version-2 entry: got %v, want ErrUnsupportedCommand", err)
	}
	sneaky := RestoreState(StateDocument{State: NewState()})
	sneaky.Groups = []Group{g}
	if err := sneaky.Validate(); err == nil || !strings.Contains(err.Error(), "version-3 restore_state") {
		t.Errorf("version-2 restore carrying groups: got %v, want a refusal", err)
	}
}

func TestValidateGroup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		g       Group
		wantErr string // substring; "" for none
	}{
		{name: "ok", g: Group{Name: "web", Hooks: &Hooks{Online: "/usr/local/bin/up", Timeout: "10s"}}},
		{name: "bad name", g: Group{Name: "Web Site", Hooks: &Hooks{Online: "/bin/up"}}, wantErr: `group "Web Site": name`},
		{name: "no hooks", g: Group{Name: "web"}, wantErr: "has no settings"},
		{name: "relative hook", g: Group{Name: "web", Hooks: &Hooks{Online: "up.sh"}}, wantErr: `group "web": hooks.online "up.sh"`},
		{name: "timeout too long", g: Group{Name: "web", Hooks: &Hooks{Online: "/bin/up", Timeout: "1h"}}, wantErr: "outside"},
	} {
		err := PutGroup(tc.g).Validate()
		if (tc.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%s: Validate(%+v) = %v, want error containing %q", tc.name, tc.g, err, tc.wantErr)
		}
	}
}

func TestSnapshotCarriesGroups(t *testing.T) {
	f := testFSM()
	applyAt(t, f, 1, PutResource(vip("web", "198.18.1.10/24")))
	if err := applyAt(t, f, 2, PutGroup(Group{Name: "web", Hooks: &Hooks{Online: "/bin/up"}})); err != nil {
		t.Fatal(err)
	}
	data := snapshotBytes(t, f)
	if got := snapshotVersionOf(t, data); got != 3 {
		t.Errorf("snapshot of a state with group settings: got format %d, want 3", got)
	}
	got := restoreInto(t, f, data)
	c := got.Clone()
	c.Groups["web"].Hooks.Online = "/bin/changed"
	if got.Groups["web"].Hooks.Online != "/bin/up" {
		t.Errorf("changing a clone's group hooks changed the original")
	}
}
