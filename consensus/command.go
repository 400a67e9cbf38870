package consensus

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// CommandVersion is the newest command format this binary understands. A log entry
// with a newer version makes the FSM stop applying (ErrUnsupportedCommand) rather
// than skip an entry that newer replicas apply. Any change to what an existing op
// means, and every new op, bumps it; constructors write the lowest version that can
// express the command, so mixed-version clusters keep working until a new feature
// is actually used.
const CommandVersion = 1

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

var knownOps = map[Op]bool{
	OpPutNode: true, OpRemoveNode: true, OpSetDraining: true, OpPutResource: true,
	OpCreateResource: true, OpApplyResources: true, OpDeleteResource: true,
	OpAssign: true, OpUnassign: true,
}

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
	Draining    bool         `json:"draining,omitempty"`
	Resources   []Resource   `json:"resources,omitempty"`
	Names       []string     `json:"names,omitempty"`
	Assignments []Assignment `json:"assignments,omitempty"`
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
	return Command{Version: 1, Op: OpPutResource, Resources: []Resource{r}}
}

// CreateResource creates one resource and fails with ErrDuplicateName if the name exists.
func CreateResource(r Resource) Command {
	return Command{Version: 1, Op: OpCreateResource, Resources: []Resource{r}}
}

// ApplyResources creates or replaces many resources in one log entry: all or none.
func ApplyResources(rs []Resource) Command {
	return Command{Version: 1, Op: OpApplyResources, Resources: rs}
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
	if !knownOps[c.Op] {
		return fmt.Errorf("command op %q is not one of this binary's ops: %w", c.Op, ErrUnsupportedCommand)
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
	case OpApplyResources:
		var errs []error
		for _, r := range c.Resources {
			if err := ValidateResource(r); err != nil {
				errs = append(errs, err)
			}
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
	if !knownOps[c.Op] {
		return Command{}, fmt.Errorf("log entry has op %q unknown to this binary (upgrade clusterd on this node): %w",
			c.Op, ErrUnsupportedCommand)
	}
	return c, nil
}
