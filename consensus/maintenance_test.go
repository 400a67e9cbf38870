package consensus

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/health"
	"github.com/hashicorp/raft"
)

func TestFSMMaintenance(t *testing.T) {
	tests := []struct {
		name       string
		cmds       []Command // at indexes 2, 3, ... after a put_node at 1
		wantOn     bool
		wantReason string
		wantRev    uint64
	}{
		{name: "on with a reason", cmds: []Command{SetMaintenance(true, "switch upgrade")},
			wantOn: true, wantReason: "switch upgrade", wantRev: 2},
		{name: "off clears the reason", cmds: []Command{SetMaintenance(true, "switch upgrade"), SetMaintenance(false, "done")},
			wantRev: 3},
		{name: "a new reason is a change", cmds: []Command{SetMaintenance(true, "a"), SetMaintenance(true, "b")},
			wantOn: true, wantReason: "b", wantRev: 3},
		{name: "repeating it changes nothing", cmds: []Command{SetMaintenance(true, "a"), SetMaintenance(true, "a")},
			wantOn: true, wantReason: "a", wantRev: 2},
		{name: "off when off changes nothing", cmds: []Command{SetMaintenance(false, "")}, wantRev: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM()
			if err := applyAt(t, f, 1, PutNode(Node{ID: "n1"})); err != nil {
				t.Fatal(err)
			}
			for i, c := range tc.cmds {
				if err := applyAt(t, f, uint64(i+2), c); err != nil {
					t.Fatalf("command %d %+v: %v", i, c, err)
				}
			}
			st, _ := f.read()
			if st.Maintenance != tc.wantOn || st.MaintenanceReason != tc.wantReason || st.Revision != tc.wantRev {
				t.Errorf("got maintenance %v %q at revision %d, want %v %q at %d",
					st.Maintenance, st.MaintenanceReason, st.Revision, tc.wantOn, tc.wantReason, tc.wantRev)
			}
		})
	}
}

func TestSetMaintenanceValidate(t *testing.T) {
	tests := []struct {
		name    string
		cmd     Command
		wantErr string // substring; "" for no error
	}{
		{name: "on", cmd: SetMaintenance(true, "network work until 14:00")},
		{name: "off", cmd: SetMaintenance(false, "")},
		{name: "long reason", cmd: SetMaintenance(true, strings.Repeat("x", maxReasonLen+1)), wantErr: "at most 256"},
		{name: "newline", cmd: SetMaintenance(true, "a\nb"), wantErr: "one line"},
		{name: "written as version 1", cmd: Command{Version: 1, Op: OpSetMaintenance, Maintenance: true},
			wantErr: "needs command version 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cmd.Validate()
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Validate(%+v): got %v, want error containing %q", tc.cmd, err, tc.wantErr)
			}
		})
	}
}

// A version-1 entry with a version-2 op cannot come from clusterd; applying it
// would split replicas by binary version, so the FSM halts on it.
func TestFSMHaltsOnOpOlderThanItsVersion(t *testing.T) {
	f := testFSM()
	resp := f.Apply(&raft.Log{Index: 1, Data: []byte(`{"version":1,"op":"set_maintenance","maintenance":true}`)})
	if err, _ := resp.(error); !errors.Is(err, ErrUnsupportedCommand) || !strings.Contains(err.Error(), "introduced in command version 2") {
		t.Fatalf("got %v, want ErrUnsupportedCommand naming the version", resp)
	}
	if st, _ := f.read(); st.Maintenance {
		t.Errorf("maintenance set by a refused entry")
	}
}

func TestConstructorsWriteTheLowestVersion(t *testing.T) {
	plain := vip("web", "198.18.1.10/24")
	keep := plain
	keep.OnQuorumLoss = QuorumLossKeep
	hooked := plain
	hooked.Hooks = &Hooks{Online: "/usr/local/bin/web-up"}
	checked := plain
	checked.Checks = []health.Spec{{Kind: health.TCP, Target: "198.18.1.10:80"}}
	tests := []struct {
		name string
		cmd  Command
		want int
	}{
		{"put plain resource", PutResource(plain), 1},
		{"put resource keeping on quorum loss", PutResource(keep), 2},
		{"create resource with hooks", CreateResource(hooked), 2},
		{"apply with one hooked", ApplyResources([]Resource{plain, hooked}), 2},
		{"apply plain", ApplyResources([]Resource{plain}), 1},
		{"put resource with checks", PutResource(checked), 2},
		{"maintenance", SetMaintenance(true, "x"), 2},
		{"restore", RestoreState(StateDocument{State: NewState()}), 2},
		{"assign", Assign(Assignment{Resource: "web", Node: "n1"}), 1},
	}
	for _, tc := range tests {
		if tc.cmd.Version != tc.want {
			t.Errorf("%s: got version %d, want %d", tc.name, tc.cmd.Version, tc.want)
		}
	}
	bad := Command{Version: 1, Op: OpPutResource, Resources: []Resource{keep}}
	if err := bad.Validate(); !errors.Is(err, ErrUnsupportedCommand) {
		t.Errorf("version-1 put of a resource with on_quorum_loss: got %v, want ErrUnsupportedCommand", err)
	}
}

func TestSnapshotCarriesMaintenanceAndWritesLowestVersion(t *testing.T) {
	f := testFSM()
	applyAt(t, f, 1, PutResource(vip("web", "198.18.1.10/24")))
	if got := snapshotVersionOf(t, snapshotBytes(t, f)); got != 1 {
		t.Errorf("snapshot of a version-1 state: got format %d, want 1 (older binaries can read it)", got)
	}
	if err := applyAt(t, f, 2, SetMaintenance(true, "rack move")); err != nil {
		t.Fatal(err)
	}
	kept := vip("db", "198.18.1.11/24")
	kept.OnQuorumLoss, kept.Hooks = QuorumLossKeep, &Hooks{Online: "/bin/up", Timeout: "5s"}
	if err := applyAt(t, f, 3, PutResource(kept)); err != nil {
		t.Fatal(err)
	}
	data := snapshotBytes(t, f)
	if got := snapshotVersionOf(t, data); got != 2 {
		t.Errorf("snapshot of a state in maintenance: got format %d, want 2", got)
	}
	got := restoreInto(t, f, data)
	if !got.Maintenance || got.MaintenanceReason != "rack move" || !got.Resources["db"].KeepsOnQuorumLoss() {
		t.Errorf("restored maintenance %v %q, db %+v", got.Maintenance, got.MaintenanceReason, got.Resources["db"])
	}
}

func TestResourceCloneCopiesHooks(t *testing.T) {
	r := vip("web", "198.18.1.10/24")
	r.Hooks = &Hooks{Online: "/bin/up"}
	c := r.Clone()
	c.Hooks.Online = "/bin/changed"
	if r.Hooks.Online != "/bin/up" {
		t.Errorf("changing a clone's hooks changed the original: %+v", r.Hooks)
	}
}

func snapshotVersionOf(t *testing.T, data []byte) int {
	t.Helper()
	var head struct{ Version int }
	if err := json.Unmarshal(data, &head); err != nil {
		t.Fatalf("snapshot %s: %v", data, err)
	}
	return head.Version
}
