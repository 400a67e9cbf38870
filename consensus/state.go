package consensus

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
)

// State is the whole replicated state. Values a reader gets are deep copies.
type State struct {
	Nodes       map[string]Node       `json:"nodes"`       // by Node.ID
	Resources   map[string]Resource   `json:"resources"`   // by Resource.Name
	Assignments map[string]Assignment `json:"assignments"` // by Assignment.Resource
	// Revision is the raft index of the last entry that changed the state (0 before
	// any); Command.IfRevision compares against it.
	Revision uint64 `json:"revision"`
	// Maintenance freezes placement (SetMaintenance): the leader commits no moves
	// while it is set. MaintenanceReason is the operator's note, "" when off.
	Maintenance       bool   `json:"maintenance,omitempty"`
	MaintenanceReason string `json:"maintenance_reason,omitempty"`
	// Groups holds group-wide settings by group name (PutGroup, command version 3);
	// nil when no group has any.
	Groups map[string]Group `json:"groups,omitempty"`
}

// NewState returns an empty state with its maps allocated.
func NewState() State {
	return State{
		Nodes:       map[string]Node{},
		Resources:   map[string]Resource{},
		Assignments: map[string]Assignment{},
	}
}

// Clone returns a deep copy: nothing in it aliases s.
func (s State) Clone() State {
	c := State{
		Nodes:       make(map[string]Node, len(s.Nodes)),
		Resources:   make(map[string]Resource, len(s.Resources)),
		Assignments: make(map[string]Assignment, len(s.Assignments)),
		Revision:    s.Revision,

		Maintenance:       s.Maintenance,
		MaintenanceReason: s.MaintenanceReason,
	}
	for k, n := range s.Nodes {
		c.Nodes[k] = n.Clone()
	}
	for k, r := range s.Resources {
		c.Resources[k] = r.Clone()
	}
	for k, a := range s.Assignments {
		c.Assignments[k] = a
	}
	if s.Groups != nil {
		c.Groups = make(map[string]Group, len(s.Groups))
		for k, g := range s.Groups {
			c.Groups[k] = g.Clone()
		}
	}
	return c
}

// Clone returns a deep copy of n.
func (n Node) Clone() Node {
	if n.Labels != nil {
		l := make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			l[k] = v
		}
		n.Labels = l
	}
	return n
}

// Clone returns a deep copy of r.
func (r Resource) Clone() Resource {
	r.PreferredOwners = slices.Clone(r.PreferredOwners)
	r.PossibleOwners = slices.Clone(r.PossibleOwners)
	if r.NetBIOS != nil {
		nb := *r.NetBIOS
		nb.Names = slices.Clone(nb.Names)
		nb.WINS = slices.Clone(nb.WINS)
		r.NetBIOS = &nb
	}
	if r.Hooks != nil {
		h := *r.Hooks
		r.Hooks = &h
	}
	r.Checks = slices.Clone(r.Checks)
	return r
}

// Holder returns the node a resource is assigned to, or "".
func (s State) Holder(resource string) string { return s.Assignments[resource].Node }

// applyCommand changes s as c says, at raft index. It is deterministic and either
// applies the whole command or returns an error and leaves s unchanged. addrs
// indexes s.Resources by IP address and is kept in step.
func (s *State) applyCommand(c Command, index uint64, addrs map[netip.Addr]string) error {
	if c.IfRevision != 0 && c.IfRevision != s.Revision {
		return fmt.Errorf("command planned at revision %d but the state changed at revision %d "+
			"(re-read the state and plan again): %w", c.IfRevision, s.Revision, ErrStale)
	}
	changed, err := s.dispatch(c, index, addrs)
	if err == nil && changed {
		s.Revision = index
	}
	return err
}

func (s *State) dispatch(c Command, index uint64, addrs map[netip.Addr]string) (changed bool, err error) {
	switch c.Op {
	case OpPutNode:
		if c.Node == nil {
			return false, errors.New("put_node entry without a node")
		}
		s.Nodes[c.Node.ID] = c.Node.Clone()
		return true, nil
	case OpRemoveNode:
		return s.removeNode(c.NodeID)
	case OpSetDraining:
		n, ok := s.Nodes[c.NodeID]
		if !ok {
			return false, unknownNode(c.NodeID)
		}
		n.Draining = c.Draining
		s.Nodes[c.NodeID] = n
		return true, nil
	case OpPutResource, OpApplyResources:
		return s.putResources(c.Resources, false, addrs)
	case OpCreateResource:
		return s.putResources(c.Resources, true, addrs)
	case OpDeleteResource:
		return s.deleteResources(c.Names, addrs)
	case OpAssign:
		return s.assign(c.Assignments, index)
	case OpUnassign:
		return s.unassign(c.Names)
	case OpSetMaintenance:
		return s.setMaintenance(c.Maintenance, c.Reason), nil
	case OpRestoreState:
		changed, err := s.restoreResources(c.Resources, addrs)
		if err == nil && c.Version >= 3 {
			s.restoreGroups(c.Groups) // a version-2 restore leaves the group records alone
		}
		return changed, err
	case OpPutGroup:
		return s.putGroup(c.Group)
	case OpDeleteGroup:
		return s.deleteGroups(c.Names)
	case OpApplyChanges:
		return s.applyChanges(c, addrs)
	}
	// decodeCommand rejects unknown ops before they get here.
	return false, fmt.Errorf("op %q: %w", c.Op, ErrUnsupportedCommand)
}

func unknownNode(id string) error {
	return fmt.Errorf("node %q is not a cluster member (list nodes with `clusterd nodes`): %w", id, ErrUnknownNode)
}

func notFound(name string) error {
	return fmt.Errorf("resource %q does not exist (list resources with `clusterd resources`): %w", name, ErrNotFound)
}

func (s *State) removeNode(id string) (bool, error) {
	if _, ok := s.Nodes[id]; !ok {
		return false, unknownNode(id)
	}
	delete(s.Nodes, id)
	for r, a := range s.Assignments {
		if a.Node == id {
			delete(s.Assignments, r)
		}
	}
	return true, nil
}

// putResources creates or replaces rs, all or none. Names must be unique in the
// batch, addresses unique across the batch and every resource not replaced by it.
func (s *State) putResources(rs []Resource, create bool, addrs map[netip.Addr]string) (bool, error) {
	if err := s.checkPut(rs, create, addrs, nil); err != nil {
		return false, err
	}
	s.storePut(rs, addrs)
	return len(rs) > 0, nil
}

// checkPut is putResources' checks; an address held by a resource in freed (deleted
// in the same command) counts as free.
func (s *State) checkPut(rs []Resource, create bool, addrs map[netip.Addr]string, freed map[string]bool) error {
	batchNames := make(map[string]bool, len(rs))
	batchAddrs := make(map[netip.Addr]string, len(rs))
	for _, r := range rs {
		if batchNames[r.Name] {
			return fmt.Errorf("resource %q appears twice in one batch (keep one): %w", r.Name, ErrDuplicateName)
		}
		batchNames[r.Name] = true
		if _, exists := s.Resources[r.Name]; create && exists {
			return fmt.Errorf("resource %q already exists (replace it with put, or pick another name): %w",
				r.Name, ErrDuplicateName)
		}
		ip := r.Address.Addr()
		if other, ok := batchAddrs[ip]; ok {
			return duplicateAddress(r, other)
		}
		batchAddrs[ip] = r.Name
	}
	for _, r := range rs {
		ip := r.Address.Addr()
		// The address is taken unless its holder is r itself, is being replaced
		// in this batch (and therefore moves to another address or is r), or is
		// being deleted.
		if other, ok := addrs[ip]; ok && other != r.Name && !batchNames[other] && !freed[other] {
			return duplicateAddress(r, other)
		}
	}
	return nil
}

// storePut creates or replaces rs, checked by checkPut, and keeps addrs in step.
func (s *State) storePut(rs []Resource, addrs map[netip.Addr]string) {
	for _, r := range rs {
		if old, ok := s.Resources[r.Name]; ok && addrs[old.Address.Addr()] == r.Name {
			delete(addrs, old.Address.Addr())
		}
	}
	for _, r := range rs {
		s.Resources[r.Name] = r.Clone()
		addrs[r.Address.Addr()] = r.Name
	}
}

func duplicateAddress(r Resource, other string) error {
	return fmt.Errorf("resource %q: address %s is already used by resource %q "+
		"(one address per resource, whatever the prefix length; change or delete %q first): %w",
		r.Name, r.Address.Addr(), other, other, ErrDuplicateAddress)
}

func (s *State) deleteResources(names []string, addrs map[netip.Addr]string) (bool, error) {
	for _, n := range names {
		if _, ok := s.Resources[n]; !ok {
			return false, notFound(n)
		}
	}
	for _, n := range names {
		if r, ok := s.Resources[n]; ok && addrs[r.Address.Addr()] == n {
			delete(addrs, r.Address.Addr())
		}
		delete(s.Resources, n)
		delete(s.Assignments, n)
	}
	return len(names) > 0, nil
}

// assign sets each assignment; a changed holder gets Epoch = index, an unchanged
// one keeps its epoch (its leases stay valid) and takes the new Manual flag.
func (s *State) assign(as []Assignment, index uint64) (bool, error) {
	seen := make(map[string]bool, len(as))
	for _, a := range as {
		if _, ok := s.Resources[a.Resource]; !ok {
			return false, notFound(a.Resource)
		}
		if seen[a.Resource] {
			return false, fmt.Errorf("resource %q is assigned twice in one command (keep one): %w",
				a.Resource, ErrDuplicateName)
		}
		seen[a.Resource] = true
		if _, ok := s.Nodes[a.Node]; a.Node != "" && !ok {
			return false, unknownNode(a.Node)
		}
	}
	changed := false
	for _, a := range as {
		old, had := s.Assignments[a.Resource]
		switch {
		case a.Node == "":
			if had {
				delete(s.Assignments, a.Resource)
				changed = true
			}
		case !had || old.Node != a.Node:
			s.Assignments[a.Resource] = Assignment{Resource: a.Resource, Node: a.Node, Epoch: index, Manual: a.Manual}
			changed = true
		case old.Manual != a.Manual:
			old.Manual = a.Manual
			s.Assignments[a.Resource] = old
			changed = true
		}
	}
	return changed, nil
}

func (s *State) unassign(names []string) (bool, error) {
	for _, n := range names {
		if _, ok := s.Resources[n]; !ok {
			return false, notFound(n)
		}
	}
	changed := false
	for _, n := range names {
		if _, ok := s.Assignments[n]; ok {
			delete(s.Assignments, n)
			changed = true
		}
	}
	return changed, nil
}

// setMaintenance sets the maintenance flag; the reason is kept only while it is on.
func (s *State) setMaintenance(on bool, reason string) bool {
	if !on {
		reason = ""
	}
	changed := s.Maintenance != on || s.MaintenanceReason != reason
	s.Maintenance, s.MaintenanceReason = on, reason
	return changed
}

// restoreResources replaces every resource with rs and drops every assignment, all
// or none: names and addresses must be unique within rs.
func (s *State) restoreResources(rs []Resource, addrs map[netip.Addr]string) (bool, error) {
	names := make(map[string]bool, len(rs))
	byAddr := make(map[netip.Addr]string, len(rs))
	for _, r := range rs {
		if names[r.Name] {
			return false, fmt.Errorf("restore: resource %q appears twice (keep one): %w", r.Name, ErrDuplicateName)
		}
		names[r.Name] = true
		if other, ok := byAddr[r.Address.Addr()]; ok {
			return false, duplicateAddress(r, other)
		}
		byAddr[r.Address.Addr()] = r.Name
	}
	s.Resources = make(map[string]Resource, len(rs))
	for _, r := range rs {
		s.Resources[r.Name] = r.Clone()
	}
	s.Assignments = map[string]Assignment{}
	clear(addrs)
	maps.Copy(addrs, byAddr)
	return true, nil
}

// version is the lowest snapshot and command version that holds s without loss.
func (s State) version() int {
	if len(s.Groups) > 0 {
		return 3
	}
	if s.Maintenance {
		return 2
	}
	for _, r := range s.Resources {
		if resourcesVersion(r) > 1 {
			return 2
		}
	}
	return 1
}

// addressIndex maps every resource's IP address to its name.
func (s State) addressIndex() map[netip.Addr]string {
	m := make(map[netip.Addr]string, len(s.Resources))
	for name, r := range s.Resources {
		m[r.Address.Addr()] = name
	}
	return m
}
