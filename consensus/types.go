// Package consensus holds clusterd's replicated state: the Raft log (hashicorp/raft
// with raft-boltdb/v2), a thin deterministic FSM over versioned commands, and the
// pure placement function the leader runs. It never touches the kernel; the daemon
// connects it to package resource.
package consensus

import (
	"net/netip"
	"time"

	"github.com/clusterd/clusterd/health"
)

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
	// Checks are the resource's health checks, run by its holder; a failing check
	// moves the resource to another allowed node (health.Spec: tcp, http, exec).
	Checks []health.Spec `json:"checks,omitempty"`
	// OnQuorumLoss says what the holder does when it can no longer renew its lease
	// with a majority of the voters: QuorumLossRelease ("", the default) drops the
	// address when the lease runs out, so at most one node ever holds it.
	// QuorumLossKeep keeps the address in the kernel past the lease. RISK: that
	// gives up the at-most-one-holder guarantee for this resource: if the holder
	// is cut off from a majority that is still alive, the majority fails the
	// resource over and TWO NODES HOLD THE ADDRESS at once (duplicate ARP
	// answers, split TCP sessions) until the partition heals. Use it only for an
	// address whose service tolerates that, e.g. when losing the address during a
	// network outage is worse than a duplicate.
	OnQuorumLoss string `json:"on_quorum_loss,omitempty"`
	// Hooks are optional executables run when the resource comes online, goes
	// offline or fails on its node.
	Hooks *Hooks `json:"hooks,omitempty"`
}

// Quorum-loss policies (Resource.OnQuorumLoss).
const (
	QuorumLossRelease = "release" // default: drop the address when the lease runs out
	QuorumLossKeep    = "keep"    // keep the address: two holders become possible
)

// KeepsOnQuorumLoss reports whether r's policy is QuorumLossKeep.
func (r Resource) KeepsOnQuorumLoss() bool { return r.OnQuorumLoss == QuorumLossKeep }

// Hooks names a resource's lifecycle hooks: absolute paths of executables run on
// the resource's node (package resource/hooks runs them). "" means no hook for
// that event. The online hook runs after the address and its NetBIOS interface are
// up, the offline hook before they go, the failed hook after the resource failed.
type Hooks struct {
	Online  string `json:"online,omitempty"`
	Offline string `json:"offline,omitempty"`
	Failed  string `json:"failed,omitempty"`
	// Timeout is how long one run may take (a Go duration, "1s" to "10m"); at the
	// timeout the hook and every process it started are killed. "" means
	// DefaultHookTimeout.
	Timeout string `json:"timeout,omitempty"`
}

// Hook timeout bounds. The default is CTDB's event script timeout (30 s).
const (
	DefaultHookTimeout = 30 * time.Second
	MinHookTimeout     = time.Second
	MaxHookTimeout     = 10 * time.Minute
)

// TimeoutDuration returns the hook timeout, DefaultHookTimeout if unset. Call it on
// validated hooks: an unparsable value also gives the default.
func (h Hooks) TimeoutDuration() time.Duration {
	d, err := time.ParseDuration(h.Timeout)
	if h.Timeout == "" || err != nil {
		return DefaultHookTimeout
	}
	return d
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
