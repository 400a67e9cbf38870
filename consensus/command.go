package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
)

// CommandVersion is the newest command format this binary understands. A log entry
// with a newer version makes the FSM stop applying (ErrUnsupportedCommand) rather
// than skip an entry that newer replicas apply. Any change to what an existing op
// means, and every new op, bumps it; constructors write the lowest version that can
// express the command, so mixed-version clusters keep working until a new feature
// is actually used.
//
// Version 2 adds the ops set_maintenance and restore_state and the resource fields
// on_quorum_loss, hooks and checks (a version-1 replica would silently drop those
// fields, so a command carrying a resource that sets one is written as version 2).
//
// Version 3 adds the ops put_group and delete_group (group settings, State.Groups)
// and the groups of restore_state (a restore_state written as version 3 replaces the
// group records too; it is written so only when the document has groups).
//
// Version 4 adds the op apply_changes (ApplyChanges): one `clusterd apply` that
// mixes resources and group records, or changes and deletions, as one entry.
const CommandVersion = 4

// Op names a command's operation. Its string is what the log stores.
type Op string

// The operations of command version 1.
const (
	OpPutNode        Op = "put_node"        // create or replace Node
	OpRemoveNode     Op = "remove_node"     // remove NodeID and its assignments
	OpSetDraining    Op = "set_draining"    // set NodeID's Draining flag to Draining
	OpPutResource    Op = "put_resource"    // create or replace Resources[0]
	OpCreateResource Op = "create_resource" // create Resources[0]; ErrDuplicateName if it exists
	OpApplyResources Op = "apply_resources" // create or replace every one of Resources, all or none
	OpDeleteResource Op = "delete_resource" // delete Names and their assignments, all or none
	OpAssign         Op = "assign"          // set Assignments; Node "" unassigns
	OpUnassign       Op = "unassign"        // drop the assignments of Names
)

// The operations added in command version 2.
const (
	OpSetMaintenance Op = "set_maintenance" // set State.Maintenance to Maintenance, with Reason
	OpRestoreState   Op = "restore_state"   // replace every resource with Resources and drop every assignment
)

// opSince gives the command version that introduced each op this binary knows; an
// entry must carry at least that version.
var opSince = map[Op]int{
	OpPutNode: 1, OpRemoveNode: 1, OpSetDraining: 1, OpPutResource: 1,
	OpCreateResource: 1, OpApplyResources: 1, OpDeleteResource: 1,
	OpAssign: 1, OpUnassign: 1,
	OpSetMaintenance: 2, OpRestoreState: 2,
}

// maxReasonLen bounds a maintenance reason: it is shown in status lines and events.
const maxReasonLen = 256

// String returns the op as stored in the log.
func (o Op) String() string { return string(o) }

// Command is one replicated state change, stored in the raft log as JSON. Only the
// fields its Op names are set.
type Command struct {
	Version int    `json:"version"`
	Op      Op     `json:"op"`
	Node    *Node  `json:"node,omitempty"`
	NodeID  string `json:"node_id,omitempty"`
	// Draining is the new flag for OpSetDraining.
	Draining bool `json:"draining,omitempty"`
	// Maintenance is the new flag for OpSetMaintenance and Reason the operator's
	// note that goes with it (ignored when Maintenance is false).
	Maintenance bool         `json:"maintenance,omitempty"`
	Reason      string       `json:"reason,omitempty"`
	Resources   []Resource   `json:"resources,omitempty"`
	Names       []string     `json:"names,omitempty"`
	Assignments []Assignment `json:"assignments,omitempty"`
	// Group is the group record of OpPutGroup; Groups the group records of a
	// version-3 OpRestoreState or those OpApplyChanges creates or replaces, and
	// GroupNames the group records OpApplyChanges deletes.
	Group      *Group   `json:"group,omitempty"`
	Groups     []Group  `json:"groups,omitempty"`
	GroupNames []string `json:"group_names,omitempty"`
	// IfRevision, when non-zero, applies the command only if State.Revision still
	// equals it (ErrStale otherwise): an optimistic lock for plans made from a read.
	IfRevision uint64 `json:"if_revision,omitempty"`
}

// PutNode creates or replaces a node record.
func PutNode(n Node) Command { return Command{Version: 1, Op: OpPutNode, Node: &n} }

// RemoveNode removes a node record and drops every assignment to it.
func RemoveNode(id string) Command { return Command{Version: 1, Op: OpRemoveNode, NodeID: id} }

// SetDraining sets or clears a node's draining flag.
func SetDraining(id string, draining bool) Command {
	return Command{Version: 1, Op: OpSetDraining, NodeID: id, Draining: draining}
}

// PutResource creates or replaces one resource.
func PutResource(r Resource) Command {
	return Command{Version: resourcesVersion(r), Op: OpPutResource, Resources: []Resource{r}}
}

// CreateResource creates one resource and fails with ErrDuplicateName if the name exists.
func CreateResource(r Resource) Command {
	return Command{Version: resourcesVersion(r), Op: OpCreateResource, Resources: []Resource{r}}
}

// ApplyResources creates or replaces many resources in one log entry: all or none.
func ApplyResources(rs []Resource) Command {
	return Command{Version: resourcesVersion(rs...), Op: OpApplyResources, Resources: rs}
}

// SetMaintenance turns maintenance mode on or off for the whole cluster. While it
// is on, the leader's placement loop commits no moves: nothing is placed, failed
// over, drained or failed back by the cluster (leases still protect every address).
// reason is kept in the state while maintenance is on, for status and events.
func SetMaintenance(on bool, reason string) Command {
	return Command{Version: 2, Op: OpSetMaintenance, Maintenance: on, Reason: reason}
}

// RestoreState replaces the whole resource set with a document's (from
// ExportState, read with ParseStateDocument), all or none, and drops every
// assignment so that placement assigns the resources afresh to this cluster's
// nodes. This cluster's node records and its maintenance flag are kept: the
// document's nodes are another cluster's (see DESIGN.md, "Backup and restore").
func RestoreState(doc StateDocument) Command {
	rs := make([]Resource, 0, len(doc.State.Resources))
	for _, name := range slices.Sorted(maps.Keys(doc.State.Resources)) {
		rs = append(rs, doc.State.Resources[name])
	}
	if len(doc.State.Groups) > 0 {
		return Command{Version: 3, Op: OpRestoreState, Resources: rs, Groups: sortedGroups(doc.State.Groups)}
	}
	return Command{Version: 2, Op: OpRestoreState, Resources: rs}
}

// resourcesVersion is the lowest command version that carries rs without loss.
func resourcesVersion(rs ...Resource) int {
	for _, r := range rs {
		if r.OnQuorumLoss != "" || r.Hooks != nil || len(r.Checks) > 0 {
			return 2
		}
	}
	return 1
}

// DeleteResource deletes resources and their assignments: all or none.
func DeleteResource(names ...string) Command {
	return Command{Version: 1, Op: OpDeleteResource, Names: names}
}

// Assign sets assignments; the FSM stamps each changed one's Epoch with the entry's
// raft index. An Assignment whose Node is "" unassigns its resource.
func Assign(as ...Assignment) Command {
	return Command{Version: 1, Op: OpAssign, Assignments: as}
}

// Unassign drops the assignments of the named resources.
func Unassign(names ...string) Command {
	return Command{Version: 1, Op: OpUnassign, Names: names}
}

// AssignMoves turns a plan from Place or Rebalance into one assign command that
// applies only if the state is still at revision, the one the plan was made from.
func AssignMoves(moves []Move, revision uint64) Command {
	as := make([]Assignment, len(moves))
	for i, m := range moves {
		as[i] = Assignment{Resource: m.Resource, Node: m.To}
	}
	c := Assign(as...)
	c.IfRevision = revision
	return c
}

// Validate checks a command's fields without looking at any state: the checks a
// writer runs before proposing. The FSM does not run them (see DESIGN.md: field
// rules may tighten between versions, and replaying old entries must not diverge).
func (c Command) Validate() error {
	if c.Version < 1 || c.Version > CommandVersion {
		return fmt.Errorf("command version %d: this binary writes versions 1 to %d: %w",
			c.Version, CommandVersion, ErrUnsupportedCommand)
	}
	since := opSince[c.Op]
	if since == 0 {
		return fmt.Errorf("command op %q is not one of this binary's ops: %w", c.Op, ErrUnsupportedCommand)
	}
	if c.Version < since {
		return fmt.Errorf("command op %q needs command version %d or later, the command has %d (use the op's constructor): %w",
			c.Op, since, c.Version, ErrUnsupportedCommand)
	}
	if need := resourcesVersion(c.Resources...); c.Version < need {
		return fmt.Errorf("%s command carries resources with on_quorum_loss, hooks or checks, which need command version %d, "+
			"the command has %d (use the op's constructor): %w", c.Op, need, c.Version, ErrUnsupportedCommand)
	}
	if len(c.Groups) > 0 && (c.Op != OpRestoreState || c.Version < 3) && c.Op != OpApplyChanges {
		return fmt.Errorf("%s command version %d carries group records, which only a version-3 restore_state "+
			"or an apply_changes may (use RestoreState or ApplyChanges)", c.Op, c.Version)
	}
	if len(c.GroupNames) > 0 && c.Op != OpApplyChanges {
		return fmt.Errorf("%s command names groups to delete, which only an apply_changes may (use ApplyChanges)", c.Op)
	}
	for _, g := range c.Groups {
		if err := ValidateGroup(g); err != nil {
			return err
		}
	}
	switch c.Op {
	case OpPutNode:
		if c.Node == nil {
			return errors.New("put_node command without a node (use PutNode)")
		}
		return validateNodeID(c.Node.ID)
	case OpRemoveNode, OpSetDraining:
		return validateNodeID(c.NodeID)
	case OpPutResource, OpCreateResource:
		if len(c.Resources) != 1 {
			return fmt.Errorf("%s command carries %d resources, want exactly 1 (use %s for many)",
				c.Op, len(c.Resources), OpApplyResources)
		}
		return ValidateResource(c.Resources[0])
	case OpApplyResources, OpRestoreState, OpApplyChanges:
		var errs []error
		for _, r := range c.Resources {
			if err := ValidateResource(r); err != nil {
				errs = append(errs, err)
			}
		}
		for _, n := range c.GroupNames {
			if n == "" {
				errs = append(errs, fmt.Errorf("%s command names an empty group to delete (give group names)", c.Op))
			}
		}
		if c.Op == OpApplyChanges && slices.Contains(c.Names, "") {
			errs = append(errs, fmt.Errorf("%s command names an empty resource to delete (give resource names)", c.Op))
		}
		return errors.Join(errs...)
	case OpDeleteResource, OpUnassign:
		for _, n := range c.Names {
			if n == "" {
				return fmt.Errorf("%s command names an empty resource (give resource names)", c.Op)
			}
		}
	case OpAssign:
		for _, a := range c.Assignments {
			if a.Resource == "" {
				return errors.New("assign command has an assignment without a resource name")
			}
		}
	case OpSetMaintenance:
		return validateReason(c.Reason)
	case OpPutGroup:
		if c.Group == nil {
			return errors.New("put_group command without a group (use PutGroup)")
		}
		return ValidateGroup(*c.Group)
	case OpDeleteGroup:
		for _, n := range c.Names {
			if n == "" {
				return fmt.Errorf("%s command names an empty group (give group names)", c.Op)
			}
		}
	}
	return nil
}

func validateReason(reason string) error {
	if len(reason) > maxReasonLen {
		return fmt.Errorf("maintenance reason has %d bytes, want at most %d (shorten it)", len(reason), maxReasonLen)
	}
	if strings.ContainsFunc(reason, unicode.IsControl) {
		return fmt.Errorf("maintenance reason %q contains control characters such as newlines (write it on one line)", reason)
	}
	return nil
}

func validateNodeID(id string) error {
	if id == "" || len(id) > 255 || strings.ContainsAny(id, " \t\r\n/") {
		return fmt.Errorf("node id %q: want 1 to 255 characters without spaces or '/' (use the host name)", id)
	}
	return nil
}

// encode returns the command's log entry bytes.
func (c Command) encode() ([]byte, error) { return json.Marshal(c) }

// decodeCommand reads a log entry. Anything this binary cannot fully understand,
// including a newer version or an unknown op, is ErrUnsupportedCommand.
func decodeCommand(data []byte) (Command, error) {
	var head struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Command{}, fmt.Errorf("undecodable log entry (%v): %w", err, ErrUnsupportedCommand)
	}
	if head.Version < 1 || head.Version > CommandVersion {
		return Command{}, fmt.Errorf("log entry has command version %d, this binary understands 1 to %d "+
			"(upgrade clusterd on this node): %w", head.Version, CommandVersion, ErrUnsupportedCommand)
	}
	var c Command
	if err := json.Unmarshal(data, &c); err != nil {
		return Command{}, fmt.Errorf("undecodable version %d log entry (%v): %w", head.Version, err, ErrUnsupportedCommand)
	}
	since := opSince[c.Op]
	if since == 0 {
		return Command{}, fmt.Errorf("log entry has op %q unknown to this binary (upgrade clusterd on this node): %w",
			c.Op, ErrUnsupportedCommand)
	}
	if c.Version < since {
		// Only a hand-made entry can be like this; an older binary would halt on it,
		// so applying it here would let replicas diverge.
		return Command{}, fmt.Errorf("log entry has op %q, introduced in command version %d, in a version %d entry "+
			"(the entry was not written by clusterd): %w", c.Op, since, c.Version, ErrUnsupportedCommand)
	}
	return c, nil
}
