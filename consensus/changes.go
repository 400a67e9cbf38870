package consensus

import (
	"fmt"
	"net/netip"
)

// Changes is one declarative apply (`clusterd apply -f`) as a difference from the
// state: what to create or replace and what to delete, resources and group records
// together, applied as one log entry, all or none.
type Changes struct {
	Resources    []Resource // created or replaced
	Delete       []string   // resource names deleted, with their assignments
	Groups       []Group    // group records created or replaced
	DeleteGroups []string   // group records deleted (their members stay)
}

// OpApplyChanges is the op added in command version 4: create or replace Resources,
// delete the resources named by Names, create or replace Groups and delete the
// group records named by GroupNames, all or none.
const OpApplyChanges Op = "apply_changes"

func init() { opSince[OpApplyChanges] = 4 }

// ApplyChanges returns the one command that makes ch. It is written as the lowest
// command version that expresses ch: resources only to create or replace is an
// apply_resources (version 1 or 2), deletions only a delete_resource or
// delete_group, one group record only a put_group (version 3); anything else, such
// as resources with group records or changes with deletions, is an apply_changes,
// version 4, on which an older replica halts instead of dropping part of it.
func ApplyChanges(ch Changes) Command {
	puts, dels, gputs, gdels := len(ch.Resources), len(ch.Delete), len(ch.Groups), len(ch.DeleteGroups)
	switch {
	case dels+gputs+gdels == 0:
		return ApplyResources(ch.Resources)
	case puts+gputs+gdels == 0:
		return DeleteResource(ch.Delete...)
	case puts+dels+gdels == 0 && gputs == 1:
		return PutGroup(ch.Groups[0])
	case puts+dels+gputs == 0:
		return DeleteGroup(ch.DeleteGroups...)
	}
	return Command{Version: 4, Op: OpApplyChanges, Resources: ch.Resources, Names: ch.Delete,
		Groups: ch.Groups, GroupNames: ch.DeleteGroups}
}

// applyChanges applies an apply_changes entry, all or none: every deleted resource
// and group record must exist, no name may be both kept and deleted or appear twice,
// and each address must be free once the deletions are done.
func (s *State) applyChanges(c Command, addrs map[netip.Addr]string) (bool, error) {
	deleting := make(map[string]bool, len(c.Names))
	for _, n := range c.Names {
		if _, ok := s.Resources[n]; !ok {
			return false, notFound(n)
		}
		deleting[n] = true
	}
	for _, r := range c.Resources {
		if deleting[r.Name] {
			return false, fmt.Errorf("resource %q is both created or replaced and deleted in one apply (keep one): %w",
				r.Name, ErrDuplicateName)
		}
	}
	if err := s.checkPut(c.Resources, false, addrs, deleting); err != nil {
		return false, err
	}
	putting := make(map[string]bool, len(c.Groups))
	for _, g := range c.Groups {
		if putting[g.Name] {
			return false, fmt.Errorf("group %q appears twice in one apply (keep one): %w", g.Name, ErrDuplicateName)
		}
		putting[g.Name] = true
	}
	for _, n := range c.GroupNames {
		if _, ok := s.Groups[n]; !ok {
			return false, fmt.Errorf("group %q has no settings (list them with `clusterd group list`): %w", n, ErrNotFound)
		}
		if putting[n] {
			return false, fmt.Errorf("group %q is both set and deleted in one apply (keep one): %w", n, ErrDuplicateName)
		}
	}
	// Every check passed: nothing below fails.
	if _, err := s.deleteResources(c.Names, addrs); err != nil {
		return false, err
	}
	s.storePut(c.Resources, addrs)
	for i := range c.Groups {
		s.putGroup(&c.Groups[i])
	}
	if _, err := s.deleteGroups(c.GroupNames); err != nil {
		return false, err
	}
	return len(c.Resources)+len(c.Names)+len(c.Groups)+len(c.GroupNames) > 0, nil
}
