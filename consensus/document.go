package consensus

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// StateDocumentKind marks a state document, so that a restore refuses other JSON
// (raft's own snapshot files in the data dir among them).
const StateDocumentKind = "clusterd-state"

// stateDocumentVersion is the newest state document format this binary writes and
// reads. Resource fields added later bump it. Version 2 documents have group
// settings (State.Groups); a document without them is still written as version 1.
const stateDocumentVersion = 2

// StateDocument is a backup of the whole replicated state (`clusterd snapshot
// save`), independent of raft: it can be restored into any cluster with
// RestoreState.
type StateDocument struct {
	Kind    string `json:"kind"`    // StateDocumentKind
	Version int    `json:"version"` // format version
	// Node is the id of the node that exported the document, ExportedAt when
	// (UTC, whole seconds) and Applied the raft index of the last command the
	// state includes: what an operator needs to tell backups apart.
	Node       string    `json:"node"`
	ExportedAt time.Time `json:"exported_at"`
	Applied    uint64    `json:"applied"`
	State      State     `json:"state"`
}

// ExportState returns this node's applied state as an indented JSON
// StateDocument. On the leader it includes every write the leader acknowledged; a
// follower's may lag by the entries it has not applied yet, so export on the
// leader. It refuses while the replicated state is halted (Err), since the state is
// then frozen at an older entry.
func (s *Store) ExportState() ([]byte, error) {
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("export state of node %q: %w", s.cfg.NodeID, err)
	}
	st, applied := s.State()
	version := 1
	if len(st.Groups) > 0 {
		version = 2
	}
	doc := StateDocument{Kind: StateDocumentKind, Version: version, Node: s.cfg.NodeID,
		ExportedAt: time.Now().UTC().Truncate(time.Second), Applied: applied, State: st}
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state document: %w", err)
	}
	return append(data, '\n'), nil
}

// ParseStateDocument reads a document written by ExportState and checks
// everything RestoreState needs: kind and format version, every resource valid
// on its own (ValidateResource), filed under its own name, and no address used
// twice. Nodes and assignments are read but not checked: a restore drops them. Each
// error names what is wrong and wraps ErrInvalidDocument.
func ParseStateDocument(data []byte) (StateDocument, error) {
	var doc StateDocument
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return StateDocument{}, invalidDocument("cannot be decoded (%v); give a file written by `clusterd snapshot save`", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return StateDocument{}, invalidDocument("has data after the document; give a file written by `clusterd snapshot save`")
	}
	if doc.Kind != StateDocumentKind {
		return StateDocument{}, invalidDocument("has kind %q, want %q (raft's snapshot files in the data dir are not "+
			"state documents; give a file written by `clusterd snapshot save`)", doc.Kind, StateDocumentKind)
	}
	if doc.Version < 1 || doc.Version > stateDocumentVersion {
		return StateDocument{}, invalidDocument("has format version %d, this binary reads 1 to %d "+
			"(restore with the clusterd version that saved it, or a newer one)", doc.Version, stateDocumentVersion)
	}
	st := &doc.State
	if st.Nodes == nil {
		st.Nodes = map[string]Node{}
	}
	if st.Resources == nil {
		st.Resources = map[string]Resource{}
	}
	if st.Assignments == nil {
		st.Assignments = map[string]Assignment{}
	}
	var errs []error
	byAddr := make(map[netip.Addr]string, len(st.Resources))
	for _, key := range slices.Sorted(maps.Keys(st.Resources)) {
		r := st.Resources[key]
		if r.Name != key {
			errs = append(errs, invalidDocument("lists resource %q under the key %q (the key must be the resource's name)", r.Name, key))
			continue
		}
		if err := ValidateResource(r); err != nil {
			errs = append(errs, fmt.Errorf("state document: %w: %w", err, ErrInvalidDocument))
			continue
		}
		if other, ok := byAddr[r.Address.Addr()]; ok {
			errs = append(errs, invalidDocument("resources %q and %q both use address %s (one address per resource; "+
				"edit the file)", other, r.Name, r.Address.Addr()))
			continue
		}
		byAddr[r.Address.Addr()] = r.Name
	}
	for _, key := range slices.Sorted(maps.Keys(st.Groups)) {
		if g := st.Groups[key]; g.Name != key {
			errs = append(errs, invalidDocument("lists group %q under the key %q (the key must be the group's name)", g.Name, key))
		} else if err := ValidateGroup(g); err != nil {
			errs = append(errs, fmt.Errorf("state document: %w: %w", err, ErrInvalidDocument))
		}
	}
	if len(errs) > 0 {
		return StateDocument{}, errors.Join(errs...)
	}
	return doc, nil
}

func invalidDocument(format string, args ...any) error {
	return fmt.Errorf("state document "+format+": %w", append(args, ErrInvalidDocument)...)
}
