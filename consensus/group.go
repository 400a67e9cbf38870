package consensus

import (
	"errors"
	"fmt"
	"maps"
	"slices"
)

// Group holds the settings of a resource group as a whole (command version 3). A
// group exists through its members (Resource.Group); a Group record only adds
// group-wide settings and may exist before or after its members. Placement does not
// read it: preferred owners and failback still come from the members (DESIGN.md,
// "Placement rules").
type Group struct {
	Name string `json:"name"`
	// Hooks run once per group on a node, in the manner of a Pacemaker group's or a
	// CTDB event script: online after every member's address and NetBIOS interface
	// are up there (a failure fails the whole group over), offline before the first
	// member goes, failed after a member failed there.
	Hooks *Hooks `json:"hooks,omitempty"`
}

// Clone returns a deep copy of g.
func (g Group) Clone() Group {
	if g.Hooks != nil {
		h := *g.Hooks
		g.Hooks = &h
	}
	return g
}

// The operations added in command version 3.
const (
	OpPutGroup    Op = "put_group"    // create or replace Group
	OpDeleteGroup Op = "delete_group" // delete the Group records named by Names
)

func init() {
	opSince[OpPutGroup] = 3
	opSince[OpDeleteGroup] = 3
}

// PutGroup creates or replaces a group's settings.
func PutGroup(g Group) Command {
	return Command{Version: 3, Op: OpPutGroup, Group: &g}
}

// DeleteGroup deletes group records (their members stay, without group settings).
func DeleteGroup(names ...string) Command {
	return Command{Version: 3, Op: OpDeleteGroup, Names: names}
}

// ValidateGroup checks a group's fields on their own: the name follows the rules for
// resource names (it is the members' Group field) and the hooks those of a
// resource's hooks.
func ValidateGroup(g Group) error {
	if err := checkName(g.Name); err != "" {
		return fmt.Errorf("group %q: name %s (group names follow the rules for resource names: lower-case letters, digits, '-', '_' and '.', e.g. \"web\")", g.Name, err)
	}
	if g.Hooks == nil {
		return fmt.Errorf("group %q has no settings (give at least one of the online, offline and failed hooks)", g.Name)
	}
	if err := validateHooks(g.Name, *g.Hooks); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			return fmt.Errorf("group %q: %s %q %s (%s)", g.Name, ve.Field, ve.Value, ve.Problem, ve.Fix)
		}
		return err
	}
	return nil
}

func (s *State) putGroup(g *Group) (bool, error) {
	if g == nil {
		return false, fmt.Errorf("put_group entry without a group: %w", ErrUnsupportedCommand)
	}
	if s.Groups == nil {
		s.Groups = map[string]Group{}
	}
	s.Groups[g.Name] = g.Clone()
	return true, nil
}

func (s *State) deleteGroups(names []string) (bool, error) {
	for _, n := range names {
		if _, ok := s.Groups[n]; !ok {
			return false, fmt.Errorf("group %q has no settings (list them with `clusterd group list`): %w", n, ErrNotFound)
		}
	}
	for _, n := range names {
		delete(s.Groups, n)
	}
	return len(names) > 0, nil
}

// restoreGroups replaces every group record (restore_state).
func (s *State) restoreGroups(gs []Group) {
	s.Groups = nil
	for _, g := range gs {
		if s.Groups == nil {
			s.Groups = make(map[string]Group, len(gs))
		}
		s.Groups[g.Name] = g.Clone()
	}
}

// sortedGroups lists a state's group records by name.
func sortedGroups(m map[string]Group) []Group {
	out := make([]Group, 0, len(m))
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[name])
	}
	return out
}
