package consensus

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

func vip(name, addr string) Resource {
	return Resource{Name: name, Address: netip.MustParsePrefix(addr), Interface: "eth0"}
}

func testFSM() *fsm {
	return newFSM(slog.New(slog.DiscardHandler), func() {})
}

// applyAt feeds cmd to f as the log entry at index.
func applyAt(t *testing.T, f *fsm, index uint64, cmd Command) error {
	t.Helper()
	data, err := cmd.encode()
	if err != nil {
		t.Fatalf("encode %+v: %v", cmd, err)
	}
	resp := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
	if resp == nil {
		return nil
	}
	return resp.(error)
}

func TestFSMApply(t *testing.T) {
	base := []Command{
		PutNode(Node{ID: "n1", Voter: true}),
		PutNode(Node{ID: "n2", Voter: true}),
		PutResource(vip("web", "198.18.1.10/24")),
		PutResource(vip("db", "2001:2::10/64")),
	}
	tests := []struct {
		name    string
		cmds    []Command // after base, at indexes 5, 6, ...
		wantErr error     // of the last command
		check   func(t *testing.T, s State)
	}{
		{
			name: "assign stamps the entry index as epoch",
			cmds: []Command{Assign(Assignment{Resource: "web", Node: "n1", Epoch: 99})},
			check: func(t *testing.T, s State) {
				if got, want := s.Assignments["web"], (Assignment{Resource: "web", Node: "n1", Epoch: 5}); got != want {
					t.Errorf("assignment: got %+v, want %+v", got, want)
				}
			},
		},
		{
			name: "same node keeps its epoch, a new node gets a new one",
			cmds: []Command{
				Assign(Assignment{Resource: "web", Node: "n1"}, Assignment{Resource: "db", Node: "n1"}),
				Assign(Assignment{Resource: "web", Node: "n1", Manual: true}, Assignment{Resource: "db", Node: "n2"}),
			},
			check: func(t *testing.T, s State) {
				if got, want := s.Assignments["web"], (Assignment{Resource: "web", Node: "n1", Epoch: 5, Manual: true}); got != want {
					t.Errorf("web: got %+v, want %+v", got, want)
				}
				if got, want := s.Assignments["db"].Epoch, uint64(6); got != want {
					t.Errorf("db epoch: got %d, want %d", got, want)
				}
			},
		},
		{
			name:    "same IPv4 address with another prefix length",
			cmds:    []Command{PutResource(vip("web2", "198.18.1.10/32"))},
			wantErr: ErrDuplicateAddress,
		},
		{
			name:    "same IPv6 address with another prefix length",
			cmds:    []Command{CreateResource(vip("db2", "2001:2::10/128"))},
			wantErr: ErrDuplicateAddress,
		},
		{
			name: "replacing a resource keeps its own address",
			cmds: []Command{PutResource(Resource{Name: "web", Address: netip.MustParsePrefix("198.18.1.10/16"), Interface: "eth1"})},
			check: func(t *testing.T, s State) {
				if got := s.Resources["web"].Interface; got != "eth1" {
					t.Errorf("web interface: got %q, want eth1", got)
				}
			},
		},
		{
			name: "one batch may swap addresses",
			cmds: []Command{ApplyResources([]Resource{vip("web", "2001:2::10/64"), vip("db", "198.18.1.10/24")})},
			check: func(t *testing.T, s State) {
				if got := s.Resources["web"].Address.String(); got != "2001:2::10/64" {
					t.Errorf("web address: got %s", got)
				}
			},
		},
		{
			name:    "a batch is all or none",
			cmds:    []Command{ApplyResources([]Resource{vip("a", "198.18.2.1/24"), vip("b", "198.18.1.10/24")})},
			wantErr: ErrDuplicateAddress,
			check: func(t *testing.T, s State) {
				if _, ok := s.Resources["a"]; ok {
					t.Errorf("resource a applied from a rejected batch")
				}
			},
		},
		{
			name:    "a batch names a resource twice",
			cmds:    []Command{ApplyResources([]Resource{vip("a", "198.18.2.1/24"), vip("a", "198.18.2.2/24")})},
			wantErr: ErrDuplicateName,
		},
		{
			name:    "a batch uses an address twice",
			cmds:    []Command{ApplyResources([]Resource{vip("a", "198.18.2.1/24"), vip("b", "198.18.2.1/25")})},
			wantErr: ErrDuplicateAddress,
		},
		{
			name:    "create refuses an existing name",
			cmds:    []Command{CreateResource(vip("web", "198.18.9.9/24"))},
			wantErr: ErrDuplicateName,
		},
		{
			name:    "delete of a missing resource",
			cmds:    []Command{DeleteResource("nope")},
			wantErr: ErrNotFound,
		},
		{
			name: "delete drops the assignment and frees the address",
			cmds: []Command{
				Assign(Assignment{Resource: "web", Node: "n1"}),
				DeleteResource("web"),
				PutResource(vip("web2", "198.18.1.10/24")),
			},
			check: func(t *testing.T, s State) {
				if _, ok := s.Assignments["web"]; ok {
					t.Errorf("assignment of deleted resource kept: %+v", s.Assignments)
				}
			},
		},
		{
			name:    "assign to an unknown node",
			cmds:    []Command{Assign(Assignment{Resource: "web", Node: "n9"})},
			wantErr: ErrUnknownNode,
		},
		{
			name:    "assign an unknown resource",
			cmds:    []Command{Assign(Assignment{Resource: "nope", Node: "n1"})},
			wantErr: ErrNotFound,
		},
		{
			name: "removing a node drops its assignments only",
			cmds: []Command{
				Assign(Assignment{Resource: "web", Node: "n1"}, Assignment{Resource: "db", Node: "n2"}),
				RemoveNode("n1"),
			},
			check: func(t *testing.T, s State) {
				if _, ok := s.Nodes["n1"]; ok {
					t.Errorf("node n1 kept")
				}
				if got := fmt.Sprint(s.Assignments); got != "map[db:{db n2 5 false}]" {
					t.Errorf("assignments: got %s", got)
				}
			},
		},
		{
			name:    "remove an unknown node",
			cmds:    []Command{RemoveNode("n9")},
			wantErr: ErrUnknownNode,
		},
		{
			name:    "drain an unknown node",
			cmds:    []Command{SetDraining("n9", true)},
			wantErr: ErrUnknownNode,
		},
		{
			name: "drain and undrain",
			cmds: []Command{SetDraining("n2", true)},
			check: func(t *testing.T, s State) {
				if !s.Nodes["n2"].Draining {
					t.Errorf("n2 not draining")
				}
			},
		},
		{
			name: "unassign and assign with an empty node",
			cmds: []Command{
				Assign(Assignment{Resource: "web", Node: "n1"}, Assignment{Resource: "db", Node: "n1"}),
				Unassign("web"),
				Assign(Assignment{Resource: "db"}),
			},
			check: func(t *testing.T, s State) {
				if len(s.Assignments) != 0 {
					t.Errorf("assignments left: %+v", s.Assignments)
				}
			},
		},
		{
			name:    "a stale revision is refused",
			cmds:    []Command{{Version: 1, Op: OpAssign, Assignments: []Assignment{{Resource: "web", Node: "n1"}}, IfRevision: 3}},
			wantErr: ErrStale,
		},
		{
			name: "the current revision is accepted",
			cmds: []Command{{Version: 1, Op: OpAssign, Assignments: []Assignment{{Resource: "web", Node: "n1"}}, IfRevision: 4}},
			check: func(t *testing.T, s State) {
				if s.Revision != 5 {
					t.Errorf("revision: got %d, want 5", s.Revision)
				}
			},
		},
		{
			name:    "rejected and no-op commands keep the revision",
			cmds:    []Command{Unassign("web"), DeleteResource("nope")},
			wantErr: ErrNotFound,
			check: func(t *testing.T, s State) {
				if s.Revision != 4 {
					t.Errorf("revision: got %d, want 4", s.Revision)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := testFSM()
			for i, c := range base {
				if err := applyAt(t, f, uint64(i+1), c); err != nil {
					t.Fatalf("base command %d: %v", i, err)
				}
			}
			var err error
			for i, c := range tc.cmds {
				err = applyAt(t, f, uint64(len(base)+i+1), c)
				if err != nil && i < len(tc.cmds)-1 {
					t.Fatalf("command %d %+v: %v", i, c, err)
				}
			}
			if !errors.Is(err, tc.wantErr) || (err != nil) != (tc.wantErr != nil) {
				t.Fatalf("last command: got error %v, want %v", err, tc.wantErr)
			}
			st, applied := f.read()
			if want := uint64(len(base) + len(tc.cmds)); applied != want {
				t.Errorf("applied index: got %d, want %d", applied, want)
			}
			if tc.check != nil {
				tc.check(t, st)
			}
		})
	}
}

func TestFSMErrorsNameTheValue(t *testing.T) {
	f := testFSM()
	applyAt(t, f, 1, PutResource(vip("web", "198.18.1.10/24")))
	err := applyAt(t, f, 2, PutResource(vip("web2", "198.18.1.10/32")))
	for _, want := range []string{`"web2"`, "198.18.1.10", `"web"`, "duplicate address"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestFSMHaltsOnUnsupportedEntry(t *testing.T) {
	future, _ := PutNode(Node{ID: "n2"}).encode()
	future = bytes.Replace(future, []byte(`"version":1`), fmt.Appendf(nil, `"version":%d`, CommandVersion+1), 1)
	for name, data := range map[string][]byte{
		"newer version": future,
		"unknown op":    []byte(`{"version":1,"op":"frobnicate"}`),
		"garbage":       []byte("\x00\x01"),
		"no version":    []byte(`{"op":"put_node","node":{"id":"n3"}}`),
	} {
		t.Run(name, func(t *testing.T) {
			f := testFSM()
			if err := applyAt(t, f, 1, PutNode(Node{ID: "n1"})); err != nil {
				t.Fatal(err)
			}
			resp := f.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})
			if err, _ := resp.(error); !errors.Is(err, ErrUnsupportedCommand) {
				t.Fatalf("entry %q: got %v, want ErrUnsupportedCommand", data, resp)
			}
			if err := applyAt(t, f, 3, PutNode(Node{ID: "n4"})); !errors.Is(err, ErrUnsupportedCommand) {
				t.Errorf("entry after the halt: got %v, want ErrUnsupportedCommand", err)
			}
			if st, _ := f.read(); len(st.Nodes) != 1 {
				t.Errorf("state changed after the halt: %+v", st.Nodes)
			}
			if _, err := f.Snapshot(); !errors.Is(err, ErrUnsupportedCommand) {
				t.Errorf("snapshot while halted: got %v, want ErrUnsupportedCommand", err)
			}
			if f.err() == nil {
				t.Errorf("err() is nil after a halt")
			}
		})
	}
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "test" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

func snapshotBytes(t *testing.T, f *fsm) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil || !sink.closed {
		t.Fatalf("Persist: %v (closed %v)", err, sink.closed)
	}
	return sink.Bytes()
}

// restoreInto restores data into a fresh FSM, checks it holds f's state, and returns
// the restored state.
func restoreInto(t *testing.T, f *fsm, data []byte) State {
	t.Helper()
	g := testFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, _ := g.read()
	if want, _ := f.read(); !reflect.DeepEqual(got, want) {
		t.Errorf("restored state:\n got %+v\nwant %+v", got, want)
	}
	return got
}

func TestSnapshotRoundTrip(t *testing.T) {
	f := testFSM()
	cmds := []Command{
		PutNode(Node{ID: "n1", RaftAddr: "192.0.2.1:7000", APIAddr: "192.0.2.1:7001", Voter: true, Labels: map[string]string{"rack": "a"}}),
		PutNode(Node{ID: "n2", Draining: true}),
		ApplyResources([]Resource{
			{Name: "web", Address: netip.MustParsePrefix("198.18.1.10/24"), Interface: "eth0", PreferredOwners: []string{"n1"},
				PossibleOwners: []string{"n1", "n2"}, Failback: "window:02:00-04:00", Group: "g",
				NetBIOS: &NetBIOS{Names: []string{"WEB<00>", "WEB<20>"}, Scope: "corp", WINS: []netip.Addr{netip.MustParseAddr("198.18.0.2")}, NodeType: "H"}},
			{Name: "db", Address: netip.MustParsePrefix("2001:2::10/64"), Interface: "eth1", Offline: true},
		}),
		Assign(Assignment{Resource: "web", Node: "n1", Manual: true}),
	}
	for i, c := range cmds {
		if err := applyAt(t, f, uint64(i+1), c); err != nil {
			t.Fatalf("command %d: %v", i, err)
		}
	}
	data := snapshotBytes(t, f)

	g := testFSM()
	applyAt(t, g, 1, PutNode(Node{ID: "stale"})) // replaced by the restore
	if err := g.Restore(io.NopCloser(bytes.NewReader(data))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	got, gotApplied := g.read()
	want, wantApplied := f.read()
	if !reflect.DeepEqual(got, want) || gotApplied != wantApplied {
		t.Fatalf("restored state differs:\n got %+v (applied %d)\nwant %+v (applied %d)", got, gotApplied, want, wantApplied)
	}
	// A snapshot of the restored state is byte-identical: snapshots are deterministic.
	if again := snapshotBytes(t, g); !bytes.Equal(again, data) {
		t.Errorf("snapshot of restored state differs:\n%s\n%s", again, data)
	}
	// The restored address index still catches duplicates.
	if err := applyAt(t, g, 5, PutResource(vip("other", "2001:2::10/128"))); !errors.Is(err, ErrDuplicateAddress) {
		t.Errorf("duplicate after restore: got %v, want ErrDuplicateAddress", err)
	}
}

func TestRestoreRefusesNewerSnapshotAndClearsHalt(t *testing.T) {
	f := testFSM()
	f.Apply(&raft.Log{Index: 1, Data: []byte(`{"version":99,"op":"x"}`)})
	if f.err() == nil {
		t.Fatal("not halted")
	}
	err := f.Restore(io.NopCloser(strings.NewReader(fmt.Sprintf(`{"version":%d,"state":{}}`, snapshotVersion+1))))
	if !errors.Is(err, ErrUnsupportedCommand) {
		t.Fatalf("newer snapshot: got %v, want ErrUnsupportedCommand", err)
	}
	if err := f.Restore(io.NopCloser(strings.NewReader(`{"version":1,"state":{},"applied":7}`))); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if f.err() != nil {
		t.Errorf("still halted after a restore: %v", f.err())
	}
	if err := applyAt(t, f, 8, PutNode(Node{ID: "n1"})); err != nil {
		t.Errorf("apply after restore: %v", err)
	}
}

// Readers share one copy per revision (read-only by contract); the FSM's own state
// is never reachable through it, so the next revision's copy is clean.
func TestStateViewIsSharedButDetached(t *testing.T) {
	f := testFSM()
	applyAt(t, f, 1, PutNode(Node{ID: "n1", Labels: map[string]string{"a": "b"}}))
	applyAt(t, f, 2, PutResource(Resource{Name: "web", Address: netip.MustParsePrefix("198.18.1.10/24"), Interface: "eth0",
		PreferredOwners: []string{"n1"}, NetBIOS: &NetBIOS{Names: []string{"WEB<00>"}}}))
	st, _ := f.read()
	same, _ := f.read()
	if reflect.ValueOf(st.Resources).Pointer() != reflect.ValueOf(same.Resources).Pointer() {
		t.Errorf("two reads of one revision made two copies")
	}
	st.Nodes["n1"].Labels["a"] = "changed"
	st.Resources["web"].PreferredOwners[0] = "changed"
	st.Resources["web"].NetBIOS.Names[0] = "changed"
	applyAt(t, f, 3, PutNode(Node{ID: "n2"}))
	again, _ := f.read()
	if again.Nodes["n1"].Labels["a"] != "b" || again.Resources["web"].PreferredOwners[0] != "n1" ||
		again.Resources["web"].NetBIOS.Names[0] != "WEB<00>" {
		t.Errorf("a reader's change reached the FSM: %+v", again)
	}
}

func TestApplyThousandResourcesInOneEntry(t *testing.T) {
	rs := make([]Resource, 1000)
	for i := range rs {
		rs[i] = Resource{Name: fmt.Sprintf("vip-%04d", i), Interface: "eth0",
			Address:  netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 16),
			NetBIOS:  &NetBIOS{Names: []string{fmt.Sprintf("VIP%04d<00>", i), fmt.Sprintf("VIP%04d<20>", i)}},
			Failback: FailbackNever}
	}
	cmd := ApplyResources(rs)
	if err := cmd.Validate(); err != nil {
		t.Fatal(err)
	}
	data, _ := cmd.encode()
	t.Logf("one apply of 1,000 resources is a %d-byte log entry", len(data))
	f := testFSM()
	if err := applyAt(t, f, 1, cmd); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.read(); len(st.Resources) != 1000 {
		t.Errorf("resources: got %d, want 1000", len(st.Resources))
	}
	// Re-applying the same set replaces every resource without tripping over
	// their own addresses.
	if err := applyAt(t, f, 2, cmd); err != nil {
		t.Errorf("re-apply: %v", err)
	}
}
