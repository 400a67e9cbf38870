package resource

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
)

// stateFile records the addresses clusterd added, so that only those are ever
// removed and a restart after a crash finds them. The kernel has no reliable tag for
// them (see DESIGN.md, "Address handling").
type stateFile struct {
	path string
}

type stateRecord struct {
	Version   int           `json:"version"`
	Addresses []recordEntry `json:"addresses"`
}

type recordEntry struct {
	Address   netip.Prefix `json:"address"`
	Interface string       `json:"interface"`
}

const stateVersion = 1

// load returns the recorded addresses; a missing file means none.
func (s stateFile) load() ([]Address, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read address state %s: %w", s.path, err)
	}
	var rec stateRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("address state %s is corrupt (%v): it lists the cluster addresses this node added; remove them by hand with `ip addr del`, then delete the file", s.path, err)
	}
	if rec.Version != stateVersion {
		return nil, fmt.Errorf("address state %s has version %d, this binary reads version %d (upgrade clusterd)", s.path, rec.Version, stateVersion)
	}
	out := make([]Address, 0, len(rec.Addresses))
	for _, e := range rec.Addresses {
		out = append(out, Address{Prefix: e.Address, Interface: e.Interface})
	}
	return out, nil
}

// save replaces the record atomically (write, fsync, rename, fsync the directory), so
// a crash leaves either the old or the new list, never a torn one.
func (s stateFile) save(as []Address) error {
	rec := stateRecord{Version: stateVersion, Addresses: make([]recordEntry, 0, len(as))}
	for _, a := range as {
		rec.Addresses = append(rec.Addresses, recordEntry{Address: a.Prefix, Interface: a.Interface})
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, ".addresses-*")
	if err != nil {
		return fmt.Errorf("write address state in %s: %w", dir, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write address state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("sync address state %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("replace address state %s: %w", s.path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
