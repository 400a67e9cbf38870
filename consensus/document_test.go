package consensus

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// backupResources is a resource set using every field a restore must carry.
func backupResources() []Resource {
	web := Resource{Name: "web", Address: netip.MustParsePrefix("198.18.1.10/24"), Interface: "eth0",
		PreferredOwners: []string{"n2"}, PossibleOwners: []string{"n1", "n2", "n3"}, Failback: "window:02:00-04:00",
		Group: "g", NetBIOS: &NetBIOS{Names: []string{"WEB<00>", "WEB<20>"}, WINS: []netip.Addr{netip.MustParseAddr("198.18.0.2")}, NodeType: "H"},
		Hooks: &Hooks{Online: "/usr/local/bin/web-up", Offline: "/usr/local/bin/web-down", Timeout: "20s"}}
	db := Resource{Name: "db", Address: netip.MustParsePrefix("2001:2::10/64"), Interface: "eth1", OnQuorumLoss: QuorumLossKeep}
	off := Resource{Name: "spare", Address: netip.MustParsePrefix("198.18.1.11/24"), Interface: "eth0", Offline: true}
	return []Resource{web, db, off}
}

func TestExportRestoreIntoFreshCluster(t *testing.T) {
	old := newMemCluster(t, 3)
	oldLeader := leaderOf(t, old)
	for _, id := range []string{"n1", "n2", "n3"} {
		mustApply(t, oldLeader, PutNode(Node{ID: id, Voter: true}))
	}
	mustApply(t, oldLeader, ApplyResources(backupResources()),
		Assign(Assignment{Resource: "web", Node: "n2"}, Assignment{Resource: "db", Node: "n3", Manual: true}),
		SetMaintenance(true, "before the backup"))
	data, err := oldLeader.ExportState()
	if err != nil {
		t.Fatalf("ExportState: %v", err)
	}
	doc, err := ParseStateDocument(data)
	if err != nil {
		t.Fatalf("ParseStateDocument of an export: %v\n%s", err, data)
	}
	oldState, oldApplied := oldLeader.State()
	if doc.Kind != StateDocumentKind || doc.Node != oldLeader.cfg.NodeID || doc.Applied != oldApplied || doc.ExportedAt.IsZero() {
		t.Errorf("document header: got kind %q node %q applied %d at %v, want %q %q %d and a time",
			doc.Kind, doc.Node, doc.Applied, doc.ExportedAt, StateDocumentKind, oldLeader.cfg.NodeID, oldApplied)
	}
	if !reflect.DeepEqual(doc.State, oldState) {
		t.Errorf("document state:\n got %+v\nwant %+v", doc.State, oldState)
	}

	fresh := newMemCluster(t, 3)
	leader := leaderOf(t, fresh)
	mustApply(t, leader, PutNode(Node{ID: "n1", Voter: true, Labels: map[string]string{"rack": "b"}}),
		PutResource(vip("leftover", "198.18.9.9/24")), Assign(Assignment{Resource: "leftover", Node: "n1"}))
	before, _ := leader.State()
	index := mustApply(t, leader, RestoreState(doc))

	for _, s := range fresh {
		eventually(t, s.cfg.NodeID+" applying the restore", func() bool {
			_, applied := s.State()
			return applied >= index
		})
		got, _ := s.State()
		if !reflect.DeepEqual(got.Resources, oldState.Resources) {
			t.Errorf("%s resources after restore:\n got %+v\nwant %+v", s.cfg.NodeID, got.Resources, oldState.Resources)
		}
		if len(got.Assignments) != 0 {
			t.Errorf("%s assignments after restore: got %+v, want none (placement redoes them)", s.cfg.NodeID, got.Assignments)
		}
		if !reflect.DeepEqual(got.Nodes, before.Nodes) {
			t.Errorf("%s nodes after restore: got %+v, want this cluster's %+v", s.cfg.NodeID, got.Nodes, before.Nodes)
		}
		if got.Maintenance {
			t.Errorf("%s: maintenance restored from the document; want this cluster's (off)", s.cfg.NodeID)
		}
		if got.Revision != index {
			t.Errorf("%s revision: got %d, want the restore's index %d", s.cfg.NodeID, got.Revision, index)
		}
	}
	// The restored address index catches duplicates, and the old one is gone.
	if _, err := leader.Apply(context.Background(), PutResource(vip("dup", "198.18.1.10/32"))); !errors.Is(err, ErrDuplicateAddress) {
		t.Errorf("duplicate of a restored address: got %v, want ErrDuplicateAddress", err)
	}
	mustApply(t, leader, PutResource(vip("reuse", "198.18.9.9/24")))
}

func TestFSMRestoreIsAllOrNothing(t *testing.T) {
	f := testFSM()
	applyAt(t, f, 1, PutNode(Node{ID: "n1"}))
	applyAt(t, f, 2, PutResource(vip("web", "198.18.1.10/24")))
	applyAt(t, f, 3, Assign(Assignment{Resource: "web", Node: "n1"}))
	want, _ := f.read()
	for name, rs := range map[string][]Resource{
		"duplicate address": {vip("a", "198.18.1.20/24"), vip("b", "198.18.1.20/32")},
		"duplicate name":    {vip("a", "198.18.1.20/24"), vip("a", "198.18.1.21/24")},
	} {
		cmd := Command{Version: 2, Op: OpRestoreState, Resources: rs}
		if err := applyAt(t, f, 4, cmd); err == nil {
			t.Errorf("%s: restore applied, want an error", name)
		}
		if got, _ := f.read(); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: state changed by a refused restore:\n got %+v\nwant %+v", name, got, want)
		}
	}
}

func TestParseStateDocument(t *testing.T) {
	st := NewState()
	for _, r := range backupResources() {
		st.Resources[r.Name] = r
	}
	good := StateDocument{Kind: StateDocumentKind, Version: 1, Node: "n1", State: st}
	encode := func(doc StateDocument) string {
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	with := func(f func(*StateDocument)) string {
		doc := good
		doc.State = good.State.Clone()
		f(&doc)
		return encode(doc)
	}
	tests := []struct {
		name   string
		data   string
		wantIn []string // substrings of the error; nil = valid
	}{
		{name: "good", data: encode(good)},
		{name: "empty state", data: `{"kind":"clusterd-state","version":1,"state":{}}`},
		{name: "not JSON", data: "\x00garbage", wantIn: []string{"cannot be decoded", "clusterd snapshot save"}},
		{name: "trailing data", data: encode(good) + "{}", wantIn: []string{"data after the document"}},
		{name: "raft snapshot file", data: `{"version":1,"state":{"nodes":{}},"applied":7}`,
			wantIn: []string{`kind ""`, `want "clusterd-state"`, "raft's snapshot files"}},
		{name: "other kind", data: `{"kind":"pacemaker-cib","version":1,"state":{}}`, wantIn: []string{`"pacemaker-cib"`}},
		{name: "newer format", data: `{"kind":"clusterd-state","version":3,"state":{}}`,
			wantIn: []string{"format version 3", "reads 1 to 2"}},
		{name: "unknown field", data: `{"kind":"clusterd-state","version":1,"state":{},"colour":"red"}`,
			wantIn: []string{`"colour"`}},
		{name: "resource under another key", data: with(func(d *StateDocument) {
			d.State.Resources["other"] = d.State.Resources["web"]
		}), wantIn: []string{`resource "web" under the key "other"`}},
		{name: "invalid resource", data: with(func(d *StateDocument) {
			r := d.State.Resources["web"]
			r.Interface = "eth0/1"
			d.State.Resources["web"] = r
		}), wantIn: []string{`resource "web": interface "eth0/1"`}},
		{name: "two errors", data: with(func(d *StateDocument) {
			for _, name := range []string{"web", "db"} {
				r := d.State.Resources[name]
				r.Hooks = &Hooks{Online: "relative"}
				d.State.Resources[name] = r
			}
		}), wantIn: []string{`resource "web": hooks.online`, `resource "db": hooks.online`}},
		{name: "duplicate address", data: with(func(d *StateDocument) {
			r := d.State.Resources["spare"]
			r.Address = netip.MustParsePrefix("198.18.1.10/32")
			d.State.Resources["spare"] = r
		}), wantIn: []string{`"spare" and "web" both use address 198.18.1.10`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := ParseStateDocument([]byte(tc.data))
			if tc.wantIn == nil {
				if err != nil {
					t.Fatalf("ParseStateDocument(%s): %v", tc.data, err)
				}
				if doc.State.Nodes == nil || doc.State.Resources == nil || doc.State.Assignments == nil {
					t.Errorf("maps not allocated: %+v", doc.State)
				}
				return
			}
			if !errors.Is(err, ErrInvalidDocument) {
				t.Fatalf("ParseStateDocument(%s): got %v, want ErrInvalidDocument", tc.data, err)
			}
			for _, s := range tc.wantIn {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
		})
	}
	// RestoreState orders the resources by name, so the same document always
	// gives the same log entry.
	doc, _ := ParseStateDocument([]byte(encode(good)))
	cmd := RestoreState(doc)
	var names []string
	for _, r := range cmd.Resources {
		names = append(names, r.Name)
	}
	if want := []string{"db", "spare", "web"}; !reflect.DeepEqual(names, want) {
		t.Errorf("restore command resources: got %v, want %v", names, want)
	}
	if err := cmd.Validate(); err != nil {
		t.Errorf("Validate of a restore command: %v", err)
	}
}
