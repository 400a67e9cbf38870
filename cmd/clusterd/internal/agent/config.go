// Package agent wires clusterd's daemon: the raft store (consensus), the address
// manager (resource), the API and health endpoint (health), and the loops that
// connect them.
package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is one node's own configuration: identity, addresses, data dir, timers.
// Resources are not here: they live in the replicated state.
type Config struct {
	NodeID    string `toml:"node_id"`
	DataDir   string `toml:"data_dir"`
	RaftAddr  string `toml:"raft_addr"` // host:port raft listens on and advertises
	APIAddr   string `toml:"api_addr"`  // host:port of the HTTP API and health endpoint
	Bootstrap bool   `toml:"bootstrap"` // start a new cluster with this node as its only voter
	Join      string `toml:"join"`      // URL of any node's API to join through
	Voter     *bool  `toml:"voter"`     // default true; false joins as a member that holds addresses without voting
	Profile   string `toml:"profile"`   // timer profile: "default", "fast" or "relaxed"
	LogLevel  string `toml:"log_level"` // debug, info, warn, error
	LogFormat string `toml:"log_format"`
	// AddressLifetime is the valid_lft of cluster addresses (e.g. "30s"), refreshed
	// every third of it while the lease holds.
	AddressLifetime string `toml:"address_lifetime"`
	// TLS material (see tls.go): the cluster CA, this node's certificate and key.
	TLSCA   string `toml:"tls_ca"`
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// Token is the cluster token (see auth.go); TokenFile a file holding it.
	Token     string `toml:"token"`
	TokenFile string `toml:"token_file"`
	// RealtimePriority is the SCHED_RR priority (1-99) every agent thread runs at, so
	// lease renewals are not starved on a loaded machine; 0 runs at nice -10 only.
	// Default DefaultRealtimePriority (priority.go says why). Needs CAP_SYS_NICE.
	RealtimePriority *int `toml:"realtime_priority"`
	// JoinWait is how long --join keeps retrying while the cluster is still starting
	// (e.g. "60s").
	JoinWait string `toml:"join_timeout"`

	// Dev runs a throwaway one-node cluster (flag only).
	Dev bool `toml:"-"`
	// Source is the config file the values came from, for messages.
	Source string `toml:"-"`
}

// DefaultAddressLifetime: see the address_lifetime key.
const DefaultAddressLifetime = 30 * time.Second

// JoinTimeout returns how long --join retries.
func (c *Config) JoinTimeout() time.Duration {
	d, err := time.ParseDuration(c.JoinWait)
	if err != nil || d < time.Second {
		return time.Minute
	}
	return d
}

// Lifetime returns the validated address lifetime.
func (c *Config) Lifetime() time.Duration {
	d, err := time.ParseDuration(c.AddressLifetime)
	if err != nil {
		return DefaultAddressLifetime
	}
	return d
}

// Defaults. The API port is documented in the README and `clusterd agent --help`.
const (
	DefaultAPIAddr  = "127.0.0.1:7400"
	DefaultRaftAddr = "127.0.0.1:7401"
)

// RTPriority returns the real-time priority to run at (0: off).
func (c *Config) RTPriority() int {
	if c.RealtimePriority == nil {
		return DefaultRealtimePriority
	}
	return *c.RealtimePriority
}

// IsVoter reports whether the node joins as a voter (the default).
func (c *Config) IsVoter() bool { return c.Voter == nil || *c.Voter }

var nodeIDRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)

// Validate checks values and fills defaults; errors name the key, the value and the fix.
func (c *Config) Validate() error {
	if c.Dev {
		if c.NodeID == "" {
			c.NodeID = "dev"
		}
		if c.APIAddr == "" {
			c.APIAddr = DefaultAPIAddr
		}
		if c.RaftAddr == "" {
			c.RaftAddr = DefaultRaftAddr
		}
		c.Bootstrap = c.Join == ""
	}
	if c.Profile == "" {
		c.Profile = "default"
	}
	if c.LogLevel == "" {
		c.LogLevel = "info"
	}
	if c.LogFormat == "" {
		c.LogFormat = "text"
	}
	if c.APIAddr == "" {
		c.APIAddr = DefaultAPIAddr
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.where(key), fmt.Sprintf(format, args...)))
	}
	if c.JoinWait == "" {
		c.JoinWait = "60s"
	}
	if d, err := time.ParseDuration(c.JoinWait); err != nil || d < time.Second || d > time.Hour {
		bad("join_timeout", "join timeout %q is not a duration from 1s to 1h (e.g. \"60s\")", c.JoinWait)
	}
	if c.AddressLifetime == "" {
		c.AddressLifetime = DefaultAddressLifetime.String()
	}
	if d, err := time.ParseDuration(c.AddressLifetime); err != nil || d < 3*time.Second || d > time.Hour {
		bad("address_lifetime", "address lifetime %q is not a duration from 3s to 1h (the kernel expires addresses with 1 s granularity; e.g. \"30s\")", c.AddressLifetime)
	}
	if !nodeIDRe.MatchString(c.NodeID) {
		bad("node_id", "node id %q is not valid (1-63 characters: letters, digits, '-', '_', '.'; set --node-id or node_id)", c.NodeID)
	}
	if c.DataDir == "" && !c.Dev {
		bad("data_dir", "no data directory (set --data-dir or data_dir to a directory on persistent storage, e.g. /var/lib/clusterd)")
	}
	for key, v := range map[string]string{"raft_addr": c.RaftAddr, "api_addr": c.APIAddr} {
		if err := checkHostPort(v); err != nil {
			bad(key, "%v", err)
		}
	}
	if c.Bootstrap && c.Join != "" {
		bad("join", "both bootstrap and join are set (bootstrap starts a new cluster, join enters an existing one: choose one)")
	}
	if c.Join != "" && !strings.Contains(c.Join, "://") {
		c.Join = "http://" + c.Join
	}
	if p := c.RTPriority(); p < 0 || p > 99 {
		bad("realtime_priority", "real-time priority %d is not 0-99 (1, the lowest, is enough to run before every normal process; 0 turns real-time scheduling off)", p)
	}
	switch c.Profile {
	case "default", "fast", "relaxed":
	default:
		bad("profile", "timer profile %q is not known (use default, fast or relaxed, the same on every node)", c.Profile)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "log level %q is not known (use debug, info, warn or error)", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log_format", "log format %q is not known (use text or json)", c.LogFormat)
	}
	return errors.Join(errs...)
}

func checkHostPort(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("address %q is not HOST:PORT (e.g. 198.18.0.101:7401)", v)
	}
	if _, err := netip.ParseAddr(host); err != nil && host != "" && host != "localhost" {
		return fmt.Errorf("address %q: host %q is not an IP address (give the IP the other nodes reach this one on)", v, host)
	}
	var p int
	if _, err := fmt.Sscanf(port, "%d", &p); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("address %q: port %q is not 1-65535", v, port)
	}
	return nil
}

// where names a key for messages: "config.toml line 3 (raft_addr)" or "--raft-addr".
func (c *Config) where(key string) string {
	if c.Source != "" {
		if line := lineOf(c.Source, key); line > 0 {
			return fmt.Sprintf("%s line %d (%s)", c.Source, line, key)
		}
		return fmt.Sprintf("%s (%s)", c.Source, key)
	}
	return "--" + strings.ReplaceAll(key, "_", "-")
}

// LoadFile reads a TOML config; unknown keys and bad values are refused with the
// line and the fix.
func LoadFile(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	var c Config
	md, err := toml.Decode(string(b), &c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s line %d: %s (fix the TOML syntax)", path, pe.Position.Line, pe.Message)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	c.Source = path
	if und := md.Undecoded(); len(und) > 0 {
		k := und[0].String()
		return nil, fmt.Errorf("%s line %d: unknown key %q (known keys: node_id, data_dir, raft_addr, api_addr, bootstrap, join, voter, profile, log_level, log_format, address_lifetime, join_timeout, realtime_priority, token, token_file, tls_ca, tls_cert, tls_key)", path, lineOf(path, k), k)
	}
	return &c, nil
}

// lineOf finds the line a top-level key is set on, 0 if not found.
func lineOf(path, key string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	re := regexp.MustCompile(`^\s*"?` + regexp.QuoteMeta(key) + `"?\s*=`)
	for i, l := range strings.Split(string(b), "\n") {
		if re.MatchString(l) {
			return i + 1
		}
	}
	return 0
}

// Timers are the raft and liveness timers of a profile.
type Timers struct {
	Heartbeat, Election, LeaderLease, Commit time.Duration
	// Lease protocol (consensus/lease): every node renews with every voter each
	// Renew; a confirmation counts for Lease from the renewal's send time; voters
	// wait Lease+Margin before confirming an address for a new holder; holders give
	// up Guard early. A node not heard from for Lease+Margin is down.
	Renew, Lease, Margin, Guard time.Duration
	// Probe is how long a new holder asks by ARP whether anyone still answers for an
	// address it takes over from a node that may be alive (RFC 5227 style).
	Probe time.Duration
}

// ProfileTimers returns the timers of a profile. Default: raft heartbeat/election
// 50 ms, leader lease 50 ms, commit 50 ms, and leases of L = 150 ms renewed every
// R = 25 ms. Raft's timers do not move addresses (leases do: a spurious election costs
// nothing but a short pause of placement), but when the holder is also the raft leader
// its failover waits for a new leader, so an election must fit inside L+M: measured
// (scripts/bench/failover, kill -9), raft at 100 ms made that failover 240 ms against
// 194 ms for a holder that is not the leader; at 50 ms both are about 185-200 ms. The
// commit timeout is how often an idle leader sends to each follower (at 5 ms that was
// most of an idle leader's CPU); followers learn a commit at once anyway, because every
// write is followed by a barrier entry (consensus.Store.nudge). The margin
// M only has to cover clock-rate drift between hosts (ppm: microseconds per lease) and
// the guard G the holder's own removal, so both are 10 ms. The takeover probe is 10 ms
// (two ARP probes 5 ms apart: a live host's kernel answers ARP in softirq within a
// millisecond, even when its processes are starved). A failover then takes about L+M
// (detection) + a commit + a renewal + the probe ≈ 185-200 ms. Fast: L = 50 ms,
// R = 10 ms, M = G = 5 ms, probe 6 ms, raft 50/50/50/50 ms (failover ≈ 85-120 ms) at 2.5
// times the renewal traffic and with less room for a loaded machine's scheduling
// delays before a false failover. Relaxed: L = 800 ms, R = 80 ms, M = G = 40 ms,
// probe 20 ms, raft heartbeat/election 500 ms, leader lease 250 ms (failover ≈ 0.9 s
// plus adding the addresses) for nodes that hold thousands of addresses on shared or
// busy hosts: under a third of the renewal traffic, and stalls of over half a second
// (a 10,000-resource raft entry decoded on every node at once, thousands of addresses
// added and announced) pass without a false failover.
func ProfileTimers(profile string) Timers {
	t := Timers{
		Heartbeat: 50 * time.Millisecond, Election: 50 * time.Millisecond,
		LeaderLease: 50 * time.Millisecond, Commit: 50 * time.Millisecond,
		Renew: 25 * time.Millisecond, Lease: 150 * time.Millisecond,
		Margin: 10 * time.Millisecond, Guard: 10 * time.Millisecond,
		Probe: 10 * time.Millisecond,
	}
	if profile == "fast" {
		t.Renew, t.Lease, t.Margin, t.Guard, t.Probe = 10*time.Millisecond, 50*time.Millisecond, 5*time.Millisecond, 5*time.Millisecond, 6*time.Millisecond
		t.Heartbeat, t.Election, t.LeaderLease, t.Commit = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	}
	if profile == "relaxed" {
		t.Renew, t.Lease, t.Margin, t.Guard, t.Probe = 80*time.Millisecond, 800*time.Millisecond, 40*time.Millisecond, 40*time.Millisecond, 20*time.Millisecond
		t.Heartbeat, t.Election, t.LeaderLease = 500*time.Millisecond, 500*time.Millisecond, 250*time.Millisecond
	}
	return t
}
