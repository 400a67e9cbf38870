package consensus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// Config configures a Store. Zero durations take the defaults noted.
type Config struct {
	NodeID  string // raft server id; the Node.ID of this node
	DataDir string // holds raft.db (log and stable store) and snapshots/
	// RaftAddr is the "host:port" raft binds and advertises; the host must be an
	// address other nodes reach (not 0.0.0.0). Port 0 picks a free port (tests).
	RaftAddr string
	APIAddr  string // stored in this node's Node record so others can forward writes
	Voter    bool   // recorded in the Node record; Bootstrap needs a voter

	// Raft timers. The defaults are the LAN values of the design brief: heartbeat
	// and election 150ms, leader lease 75ms, commit 10ms.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is how many log entries trigger a snapshot, and
	// TrailingLogs how many stay after one (both default 1024, below raft's 8192
	// and 10240: one entry can hold a 1,000-resource apply of ~150 KB or a mass
	// failover's assignments, while the whole state of 10,000 resources
	// snapshots in a few MB, so snapshotting often keeps raft.db small).
	SnapshotThreshold uint64
	TrailingLogs      uint64
	// ApplyTimeout bounds Apply when its context has no deadline (default 10s).
	ApplyTimeout time.Duration
	Logger       *slog.Logger // default slog.Default()
	// TLS, if set, runs raft over mutual TLS (it must require and verify client
	// certificates and carry this node's certificate and the cluster CA).
	TLS *tls.Config
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.HeartbeatTimeout, 150*time.Millisecond)
	def(&c.ElectionTimeout, 150*time.Millisecond)
	def(&c.LeaderLeaseTimeout, 75*time.Millisecond)
	def(&c.CommitTimeout, 10*time.Millisecond)
	def(&c.ApplyTimeout, 10*time.Second)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = 1024
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Store is this node's raft replica and the replicated state it applies.
type Store struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	fsm    *fsm
	logs   raft.LogStore
	stable raft.StableStore
	snaps  raft.SnapshotStore
	trans  raft.Transport
	bolt   io.Closer // nil for in-memory stores

	closeOnce sync.Once
	closeErr  error

	mu   sync.Mutex      // guards subs
	subs []chan struct{} // Changes subscriptions
}

// Open opens (or creates) DataDir/raft.db and the snapshot store, listens on
// RaftAddr and starts raft. It starts nothing else; call Bootstrap on a brand-new
// first node, Run to observe leadership, Close to stop.
func Open(cfg Config) (*Store, error) {
	cfg = cfg.withDefaults()
	if cfg.NodeID == "" || cfg.DataDir == "" || cfg.RaftAddr == "" {
		return nil, errors.New("consensus: node id, data dir and raft address are required (set --node-id, --data-dir, --raft-addr)")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	hlog := newHCLog(cfg.Logger)
	path := filepath.Join(cfg.DataDir, "raft.db")
	// The bolt file lock has a timeout so a second clusterd on the same data dir
	// fails instead of hanging.
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s (is another clusterd using this data dir?): %w", path, err)
	}
	logs, err := raft.NewLogCache(512, bolt)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("raft log cache: %w", err), bolt.Close())
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hlog)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("raft snapshot store in %s: %w", cfg.DataDir, err), bolt.Close())
	}
	advertise, err := net.ResolveTCPAddr("tcp", cfg.RaftAddr)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("raft address %q: %w (want host:port)", cfg.RaftAddr, err), bolt.Close())
	}
	var adv net.Addr = advertise
	if advertise.Port == 0 {
		adv = nil // advertise the port the listener picked
	}
	var trans raft.Transport
	if cfg.TLS != nil {
		var stream *tlsStream
		if stream, err = newTLSStream(cfg.RaftAddr, adv, cfg.TLS); err == nil {
			trans = raft.NewNetworkTransportWithLogger(stream, 3, 10*time.Second, hlog)
		}
	} else {
		trans, err = raft.NewTCPTransportWithLogger(cfg.RaftAddr, adv, 3, 10*time.Second, hlog)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("raft transport on %s (the host must be a local, reachable address): %w",
			cfg.RaftAddr, err), bolt.Close())
	}
	s, err := newStore(cfg, logs, bolt, snaps, trans)
	if err != nil {
		var cerr error
		if c, ok := trans.(raft.WithClose); ok {
			cerr = c.Close()
		}
		return nil, errors.Join(err, cerr, bolt.Close())
	}
	s.bolt = bolt
	return s, nil
}

// newStore starts raft over the given stores and transport (in-memory ones in tests).
func newStore(cfg Config, logs raft.LogStore, stable raft.StableStore, snaps raft.SnapshotStore, trans raft.Transport) (*Store, error) {
	cfg = cfg.withDefaults()
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.Logger = newHCLog(cfg.Logger)
	s := &Store{cfg: cfg, log: cfg.Logger, logs: logs, stable: stable, snaps: snaps, trans: trans}
	s.fsm = newFSM(cfg.Logger, s.notify)
	r, err := raft.NewRaft(rc, s.fsm, logs, stable, snaps, trans)
	if err != nil {
		return nil, fmt.Errorf("start raft: %w", err)
	}
	s.raft = r
	return s, nil
}

// Close stops the store. Call it after the contexts of Run (and of anything
// calling Apply) are done. The order matters:
//  1. Hand leadership to another voter, so the cluster elects without waiting for
//     an election timeout (best effort; a lone voter has no one to hand to).
//  2. raft.Shutdown: stops raft's goroutines and the FSM; pending futures fail
//     with raft.ErrRaftShutdown, and nothing writes the log any more.
//  3. Close the transport: its listener and pooled connections, unused from now.
//  4. Close bolt last, after raft's final writes.
//
// Close is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.IsLeader() {
			if err := s.raft.LeadershipTransfer().Error(); err != nil {
				s.log.Debug("no leadership transfer on close", "err", err)
			}
		}
		var errs []error
		if err := s.raft.Shutdown().Error(); err != nil {
			errs = append(errs, fmt.Errorf("raft shutdown: %w", err))
		}
		if c, ok := s.trans.(raft.WithClose); ok {
			if err := c.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close raft transport: %w", err))
			}
		}
		if s.bolt != nil {
			if err := s.bolt.Close(); err != nil {
				errs = append(errs, fmt.Errorf("close raft log: %w", err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// HasExistingState reports whether this node has raft state (log, term or
// snapshots), i.e. has been bootstrapped or has joined a cluster.
func (s *Store) HasExistingState() bool {
	ok, err := raft.HasExistingState(s.logs, s.stable, s.snaps)
	if err != nil {
		s.log.Error("cannot read raft state", "err", err)
		return true // never offer to bootstrap over state we cannot read
	}
	return ok
}

// Bootstrap makes this node a one-voter cluster. It is for the very first node
// only: ErrAlreadyBootstrapped if any raft state exists.
func (s *Store) Bootstrap() error {
	if !s.cfg.Voter {
		return fmt.Errorf("node %q is configured as a non-voter and cannot bootstrap a cluster (bootstrap on a voter)", s.cfg.NodeID)
	}
	if s.HasExistingState() {
		return fmt.Errorf("node %q in %s: %w (it already belongs to a cluster)", s.cfg.NodeID, s.cfg.DataDir, ErrAlreadyBootstrapped)
	}
	err := s.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(s.cfg.NodeID), Address: s.trans.LocalAddr(),
	}}}).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("node %q: %w", s.cfg.NodeID, ErrAlreadyBootstrapped)
	}
	return err
}

// Apply proposes cmd and waits until this node has applied it. It returns the
// entry's raft index and the FSM's verdict: nil, or a validation error (ErrNotFound,
// ErrDuplicateAddress, ...; the state is unchanged). ErrNotLeader means nothing was
// proposed; send the command to the leader. Apply returns early only if raft fails
// the entry (leadership lost within LeaderLeaseTimeout, shutdown): ctx's deadline
// bounds the wait to enqueue, cancellation does not interrupt a commit.
func (s *Store) Apply(ctx context.Context, cmd Command) (uint64, error) {
	if err := cmd.Validate(); err != nil {
		return 0, err
	}
	if !s.IsLeader() {
		return 0, s.notLeader()
	}
	data, err := cmd.encode()
	if err != nil {
		return 0, fmt.Errorf("encode %s command: %w", cmd.Op, err)
	}
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("apply %s: %w", cmd.Op, err)
	}
	if timeout <= 0 {
		return 0, fmt.Errorf("apply %s: %w", cmd.Op, context.DeadlineExceeded)
	}
	f := s.raft.Apply(data, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return 0, s.notLeader()
		}
		if errors.Is(err, raft.ErrLeadershipLost) {
			return 0, fmt.Errorf("apply %s: leadership lost while committing; the command may or may not "+
				"have been applied (re-read the state before retrying): %w", cmd.Op, err)
		}
		return 0, fmt.Errorf("apply %s: %w", cmd.Op, err)
	}
	s.nudge()
	if err, _ := f.Response().(error); err != nil {
		return f.Index(), err
	}
	return f.Index(), nil
}

// nudge tells the followers at once that the entry just applied is committed: they
// learn a commit index only from the next AppendEntries, which with nothing else to
// send waits for raft's CommitTimeout. A barrier is a new (no-op) entry, replicated
// at once with the new commit index, so followers apply a failover's assignment a
// round trip after the leader instead of up to two CommitTimeouts later, and the
// CommitTimeout can stay long (it sets how often an idle leader sends to followers).
// Nobody waits for the barrier itself.
func (s *Store) nudge() {
	_ = s.raft.Barrier(time.Second)
}

func (s *Store) notLeader() error {
	id, addr := s.Leader()
	if id == "" {
		return fmt.Errorf("node %q: no leader is elected yet (retry shortly): %w", s.cfg.NodeID, ErrNotLeader)
	}
	return fmt.Errorf("node %q: the leader is %q at %s (send writes there): %w", s.cfg.NodeID, id, addr, ErrNotLeader)
}

// State returns the replicated state and the raft index of the last command applied
// to it. The state is one copy shared by every caller until the next change: it is
// read-only (Clone it before changing anything in it).
func (s *Store) State() (State, uint64) { return s.fsm.read() }

// Err returns why this node stopped applying the log (ErrUnsupportedCommand: an
// entry written by a newer clusterd), or nil. While it is set, State is frozen.
func (s *Store) Err() error { return s.fsm.err() }

// Changes returns a new subscription: a channel that receives a value after state
// changes (every apply and restore) and leadership changes seen by Run. Sends never
// block and coalesce: one pending value stands for any number of changes, so read
// State after each receive. Call it once per consumer; the channel is never closed.
func (s *Store) Changes() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	return ch
}

// notify wakes every subscriber without blocking (the FSM calls it).
func (s *Store) notify() {
	s.mu.Lock()
	subs := s.subs
	s.mu.Unlock()
	for _, ch := range subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// IsLeader reports whether this node is the raft leader.
func (s *Store) IsLeader() bool { return s.raft.State() == raft.Leader }

// Leader returns the current leader's id and raft address, or "" if none is known.
func (s *Store) Leader() (id, raftAddr string) {
	addr, sid := s.raft.LeaderWithID()
	return string(sid), string(addr)
}

// RaftAddr returns the address raft advertises (the listener's, if Config.RaftAddr
// had port 0).
func (s *Store) RaftAddr() string { return string(s.trans.LocalAddr()) }

// WaitLeader waits until some leader is known.
func (s *Store) WaitLeader(ctx context.Context) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		if id, _ := s.Leader(); id != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("node %q: no raft leader elected (are a majority of voters up and reachable?): %w",
				s.cfg.NodeID, ctx.Err())
		case <-t.C:
		}
	}
}

// barrier waits until this leader's FSM has applied every entry committed before it.
func (s *Store) barrier(ctx context.Context) error {
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	return s.raft.Barrier(timeout).Error()
}
