package consensus

import "errors"

// Conditions callers branch on, checked with errors.Is. Returned errors wrap them
// with the value at fault and the fix.
var (
	// ErrDuplicateName: a resource with this name already exists (create) or the
	// name appears twice in one batch.
	ErrDuplicateName = errors.New("duplicate resource name")
	// ErrDuplicateAddress: another resource already uses this IP address (prefix
	// length does not matter).
	ErrDuplicateAddress = errors.New("duplicate address")
	// ErrNotFound: no resource has this name.
	ErrNotFound = errors.New("resource not found")
	// ErrUnknownNode: no node has this id.
	ErrUnknownNode = errors.New("unknown node")
	// ErrStale: the state changed since the revision a command was planned from.
	ErrStale = errors.New("stale revision")
	// ErrUnsupportedCommand: a log entry or snapshot this binary does not understand
	// (newer version, unknown op, undecodable). The FSM stops applying on it.
	ErrUnsupportedCommand = errors.New("unsupported command")
	// ErrNotLeader: this node is not the raft leader; the command was not applied.
	ErrNotLeader = errors.New("not the raft leader")
	// ErrAlreadyBootstrapped: Bootstrap found existing raft state.
	ErrAlreadyBootstrapped = errors.New("raft state already exists")
)

// ErrInvalidDocument: a state document (ParseStateDocument) is not one this
// binary can restore: wrong kind, newer format, undecodable or invalid resources.
var ErrInvalidDocument = errors.New("invalid state document")

// ErrQuorumReachable: Recover refused because a majority of the cluster's voters
// is reachable, i.e. the cluster is not lost: start the agent instead.
var ErrQuorumReachable = errors.New("a majority of voters is reachable")
