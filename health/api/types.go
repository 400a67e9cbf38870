// Package api is clusterd's JSON API under /v1/: the wire types, the HTTP handlers
// over a Backend, and the client the CLI uses. Writes reaching a follower are
// forwarded to the raft leader; reads are served locally with the raft index they
// reflect.
package api

// Status is the answer to GET /v1/status.
type Status struct {
	Index  uint64 `json:"index"` // raft index the answer reflects
	Leader string `json:"leader"`
	// Maintenance is set while placement is frozen (`clusterd maintenance on`).
	Maintenance       bool             `json:"maintenance,omitempty"`
	MaintenanceReason string           `json:"maintenance_reason,omitempty"`
	Self              string           `json:"self"`
	Nodes             []NodeStatus     `json:"nodes"`
	Resources         []ResourceStatus `json:"resources"`
}

// NodeStatus is one node as the cluster sees it.
type NodeStatus struct {
	ID       string `json:"id"`
	State    string `json:"state"` // up, draining, down
	Leader   bool   `json:"leader"`
	Voter    bool   `json:"voter"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Held     int    `json:"held"` // resources assigned to it
}

// ResourceStatus is one resource: its spec, where it is placed and what its holder
// reports.
type ResourceStatus struct {
	Name      string       `json:"name"`
	Address   string       `json:"address"`
	Interface string       `json:"interface"`
	Owner     string       `json:"owner"` // assigned node, "" when unplaced
	Epoch     uint64       `json:"epoch,omitempty"`
	State     string       `json:"state"` // offline, online-pending, online, offline-pending, failed
	Reason    string       `json:"reason,omitempty"`
	Event     int          `json:"event,omitempty"`
	Group     string       `json:"group,omitempty"`
	NetBIOS   []NameStatus `json:"netbios,omitempty"`
}

// NameStatus is one NetBIOS name of a resource.
type NameStatus struct {
	Name  string `json:"name"`
	State string `json:"state"` // registered, refreshing, conflict, released, ...
}

// Resource states, as observed by the resource's node.
const (
	StateOffline        = "offline"
	StateOnlinePending  = "online-pending"
	StateOnline         = "online"
	StateOfflinePending = "offline-pending"
	StateFailed         = "failed"
)

// ResourceRequest is the body of POST /v1/resources and one [[resource]] table of
// `clusterd apply -f`: keys mirror the `resource add` flags.
type ResourceRequest struct {
	Name            string   `json:"name" toml:"name"`
	Address         string   `json:"address" toml:"address"`
	Interface       string   `json:"interface" toml:"interface"`
	PreferredOwners []string `json:"preferred_owners,omitempty" toml:"preferred_owners"`
	PossibleOwners  []string `json:"possible_owners,omitempty" toml:"possible_owners"`
	Failback        string   `json:"failback,omitempty" toml:"failback"`
	Group           string   `json:"group,omitempty" toml:"group"`
	NetBIOSNames    []string `json:"netbios_names,omitempty" toml:"netbios_names"`
	WINS            []string `json:"wins,omitempty" toml:"wins"`
	NodeType        string   `json:"node_type,omitempty" toml:"node_type"`
	Scope           string   `json:"scope,omitempty" toml:"scope"`
	Offline         bool     `json:"offline,omitempty" toml:"offline"`
	// Checks: tcp:HOST:PORT, http://URL or exec:/PATH, each optionally followed by
	// ,interval=2s,timeout=1s,rise=2,fall=3,expect=200.
	Checks []string `json:"checks,omitempty" toml:"checks"`
	// Lifecycle hooks: absolute paths of executables run on this resource's online,
	// offline and failed events, each within HookTimeout (e.g. "30s").
	HookOnline  string `json:"hook_online,omitempty" toml:"hook_online"`
	HookOffline string `json:"hook_offline,omitempty" toml:"hook_offline"`
	HookFailed  string `json:"hook_failed,omitempty" toml:"hook_failed"`
	HookTimeout string `json:"hook_timeout,omitempty" toml:"hook_timeout"`
	// OnQuorumLoss is "release" (default) or "keep": keep holds the address on when
	// its node cannot reach a majority of voters, at the risk of two holders.
	OnQuorumLoss string `json:"on_quorum_loss,omitempty" toml:"on_quorum_loss"`
}

// ApplyRequest is the body of POST /v1/apply: the whole declared set, committed as
// one raft entry.
type ApplyRequest struct {
	Resources []ResourceRequest `json:"resources"`
	Groups    []GroupRequest    `json:"groups,omitempty"`
	// Prune removes the resources not listed, and, when Groups is not empty, the
	// group settings not listed (a request without groups leaves them alone).
	Prune  bool `json:"prune,omitempty"`
	DryRun bool `json:"dry_run,omitempty"`
}

// ApplyResult says what an apply changed: resources at the top level, group
// settings under Groups.
type ApplyResult struct {
	ApplyNames
	Groups ApplyNames `json:"groups"`
	Index  uint64     `json:"index"`
}

// ApplyNames lists by name what an apply created, updated, left unchanged and
// removed (or would, on a dry run).
type ApplyNames struct {
	Created   []string `json:"created"`
	Updated   []string `json:"updated"`
	Unchanged []string `json:"unchanged"`
	Removed   []string `json:"removed"`
}

// JoinRequest is the body of POST /v1/join.
type JoinRequest struct {
	ID       string `json:"id"`
	RaftAddr string `json:"raft_addr"`
	APIAddr  string `json:"api_addr"`
	Voter    bool   `json:"voter"`
}

// MoveRequest is the body of POST /v1/resources/{name}/move.
type MoveRequest struct {
	To string `json:"to,omitempty"` // "" lets placement choose another node
	// AwayFrom and Reason are set by a holder whose health checks failed: the move
	// happens only if the resource is still on AwayFrom, counts toward the
	// resource's failover limit, and keeps it off that node for a while.
	AwayFrom string `json:"away_from,omitempty"`
	Reason   string `json:"reason,omitempty"`
}

// Move is one planned or made change of owner.
type Move struct {
	Resource string `json:"resource"`
	From     string `json:"from"`
	To       string `json:"to"`
}

// WriteResult is the answer to a write: the raft index that made it.
type WriteResult struct {
	Index uint64 `json:"index"`
	Moves []Move `json:"moves,omitempty"`
}

// ErrorBody is every error answer's body.
type ErrorBody struct {
	Error string `json:"error"`
}
