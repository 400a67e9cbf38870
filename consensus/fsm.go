package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/hashicorp/raft"
)

// snapshotVersion is the newest snapshot format this binary reads. A snapshot is
// written with the lowest version that holds its state (State.version): version 2
// states use maintenance, on_quorum_loss, hooks or checks, which a version-1 binary would
// silently drop, so it refuses them instead.
//
// Version 3 states have group settings (State.Groups).
const snapshotVersion = 3

// snapshotFile is the JSON document a snapshot holds.
type snapshotFile struct {
	Version int   `json:"version"`
	State   State `json:"state"`
	// Applied is the raft index of the last command the state includes.
	Applied uint64 `json:"applied"`
}

// fsm is the raft.FSM: it decodes each committed entry and applies it to State.
// Apply is deterministic: no clock, no I/O, no randomness, and map iteration never
// decides an outcome. Its return value (nil or an error) is the Apply response.
type fsm struct {
	log      *slog.Logger
	onChange func() // called after every apply and restore, without mu held; must not block

	mu      sync.Mutex // guards the fields below
	state   State
	addrs   map[netip.Addr]string // IP address -> resource name, rebuilt on restore
	applied uint64                // raft index of the last entry applied or restored
	halted  error                 // set on the first entry this binary cannot apply
	// view is a deep copy of state made on the first read after a change and shared
	// by every reader until the next one: readers outnumber changes by far (the agent
	// reads on every lease round, API call and reconcile pass), and a 10,000-resource
	// copy per read was most of an idle agent's CPU.
	view   State
	viewOK bool
}

func newFSM(log *slog.Logger, onChange func()) *fsm {
	return &fsm{log: log, onChange: onChange, state: NewState(), addrs: map[netip.Addr]string{}}
}

// Apply implements raft.FSM. Rejected commands (validation errors) leave the state
// unchanged and are returned as the response. An entry this binary does not
// understand halts the FSM: it and every later entry are refused, and snapshots fail,
// so the log is kept until an upgraded binary replays it.
func (f *fsm) Apply(l *raft.Log) any {
	err := f.apply(l)
	f.onChange()
	return err
}

func (f *fsm) apply(l *raft.Log) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.halted != nil {
		return fmt.Errorf("not applying raft index %d: %w", l.Index, f.halted)
	}
	c, err := decodeCommand(l.Data)
	if err != nil {
		f.halted = fmt.Errorf("raft index %d: %w", l.Index, err)
		f.log.Error("replicated state halted: log entry not understood", "index", l.Index, "err", err)
		return f.halted
	}
	f.applied = l.Index
	f.viewOK = false
	return f.state.applyCommand(c, l.Index, f.addrs)
}

// read returns the state and the last applied index. The state is shared with every
// other reader of the same revision: treat it as read-only (Clone it to change it).
func (f *fsm) read() (State, uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.viewOK {
		f.view, f.viewOK = f.state.Clone(), true
	}
	return f.view, f.applied
}

// err returns why the FSM halted, or nil.
func (f *fsm) err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.halted
}

// Snapshot implements raft.FSM. Raft never calls it concurrently with Apply; the
// copy is written out by Persist while Apply continues.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.halted != nil {
		return nil, fmt.Errorf("no snapshot while the replicated state is halted: %w", f.halted)
	}
	return &fsmSnapshot{file: snapshotFile{Version: f.state.version(), State: f.state.Clone(), Applied: f.applied}}, nil
}

// Restore implements raft.FSM: it replaces the whole state with a snapshot's.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	file, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.mu.Lock()
	f.state = file.State
	f.viewOK = false
	f.addrs = file.State.addressIndex()
	f.applied = file.Applied
	f.halted = nil // the state is fully replaced by one this binary understands
	f.mu.Unlock()
	f.onChange()
	return nil
}

func readSnapshot(r io.Reader) (snapshotFile, error) {
	var file snapshotFile
	if err := json.NewDecoder(r).Decode(&file); err != nil {
		return snapshotFile{}, fmt.Errorf("undecodable snapshot (%v): %w", err, ErrUnsupportedCommand)
	}
	if file.Version < 1 || file.Version > snapshotVersion {
		return snapshotFile{}, fmt.Errorf("snapshot format %d, this binary reads 1 to %d (upgrade clusterd on this node): %w",
			file.Version, snapshotVersion, ErrUnsupportedCommand)
	}
	st := NewState()
	if file.State.Nodes != nil {
		st.Nodes = file.State.Nodes
	}
	if file.State.Resources != nil {
		st.Resources = file.State.Resources
	}
	if file.State.Assignments != nil {
		st.Assignments = file.State.Assignments
	}
	st.Revision = file.State.Revision
	st.Maintenance, st.MaintenanceReason = file.State.Maintenance, file.State.MaintenanceReason
	st.Groups = file.State.Groups
	file.State = st
	return file, nil
}

// fsmSnapshot is a point-in-time copy of the state.
type fsmSnapshot struct{ file snapshotFile }

// Persist implements raft.FSMSnapshot.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.file); err != nil {
		return errors.Join(fmt.Errorf("write snapshot %s: %w", sink.ID(), err), sink.Cancel())
	}
	return sink.Close()
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// node returns a copy of one node record and the state's revision.
func (f *fsm) node(id string) (Node, uint64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, ok := f.state.Nodes[id]
	return n.Clone(), f.state.Revision, ok
}
