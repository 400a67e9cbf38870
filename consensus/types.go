// Package consensus holds clusterd's replicated state: the Raft log (hashicorp/raft
// with raft-boltdb/v2), a thin deterministic FSM over versioned commands, and the
// pure placement function the leader runs. It never touches the kernel; the daemon
// connects it to package resource.
package consensus

import "net/netip"

// NodeState is a node's state as placement sees it.
type NodeState string

const (
	NodeUp       NodeState = "up"
	NodeDraining NodeState = "draining"
	NodeDown     NodeState = "down"
)

// Node is one member of the cluster.
type Node struct {
	ID       string            `json:"id"`
	RaftAddr string            `json:"raft_addr"`
	APIAddr  string            `json:"api_addr"`
	Voter    bool              `json:"voter"`
	Draining bool              `json:"draining,omitempty"`
	Labels   map[string]string `json:"labels,omitempty"`
}

// Failback policies (CTDB's NoIPFailback and Windows' PreventFailback make "never"
// the field's default).
const (
	FailbackNever     = "never"
	FailbackImmediate = "immediate"
	// A window is written "window:HH:MM-HH:MM" (UTC), e.g. "window:02:00-04:00".
)

// NetBIOS holds a resource's optional NetBIOS interface settings.
type NetBIOS struct {
	// Names with their suffix byte, e.g. "FILESRV<20>". Bare names are expanded to
	// NAME<00> and NAME<20> before they reach the replicated state.
	Names    []string     `json:"names"`
	Scope    string       `json:"scope,omitempty"`
	WINS     []netip.Addr `json:"wins,omitempty"`
	NodeType string       `json:"node_type,omitempty"` // "B", "P", "M" or "H"
}

// Resource is one cluster IP address (kind "ip").
type Resource struct {
	Name            string       `json:"name"`
	Address         netip.Prefix `json:"address"`
	Interface       string       `json:"interface"`
	PreferredOwners []string     `json:"preferred_owners,omitempty"`
	PossibleOwners  []string     `json:"possible_owners,omitempty"`
	Failback        string       `json:"failback,omitempty"`
	Group           string       `json:"group,omitempty"`
	NetBIOS         *NetBIOS     `json:"netbios,omitempty"`
	Offline         bool         `json:"offline,omitempty"` // desired state; false = online
}

// Assignment places a resource on a node. Epoch is the raft index of the log entry
// that made it; voters confirm leases per epoch.
type Assignment struct {
	Resource string `json:"resource"`
	Node     string `json:"node"`
	Epoch    uint64 `json:"epoch"`
	// Manual is set when an operator chose the node (`clusterd move`): placement
	// never fails a manual assignment back; it stays until its node becomes
	// ineligible. Placement's own assignments leave it false.
	Manual bool `json:"manual,omitempty"`
}
