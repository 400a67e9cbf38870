package consensus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

// recoverProbeTimeout bounds each TCP connect to another voter's raft address
// while Recover checks whether the cluster is really lost. On a LAN a live
// listener answers in well under a millisecond; a second covers a loaded host.
const recoverProbeTimeout = time.Second

// Recover rebuilds a cluster whose majority of voters is lost for good, from the
// data dir of one surviving node (`clusterd recover`). It must run with this
// node's agent STOPPED (it needs raft.db to itself; a running agent makes it fail
// on the file lock). It
//
//  1. reads the latest raft configuration from the data dir;
//  2. refuses with ErrQuorumReachable if this node plus the other voters that
//     accept a TCP connection on their raft address make a majority: then the
//     cluster is not lost, and recovering would create a second cluster next to
//     it (start the agent instead);
//  3. runs hashicorp/raft's RecoverCluster: the log and snapshots are replayed
//     into a new snapshot whose configuration has this node, at raftAddr, as the
//     only voter, and the log is compacted.
//
// When the agent starts again it elects itself at once and keeps the replicated
// state: resources, nodes, assignments. Entries in this node's log that the old
// cluster never committed are applied too (raft cannot tell them apart here).
// The lost voters are gone from the raft configuration; their Node records stay
// until removed (RemoveNode), and placement fails their resources over as soon as
// liveness counts them dead. A lost voter must never restart with its old data
// dir: wipe it and join it as a new node. Recover does nothing else to the data
// dir; running it on a node that already is the only voter is harmless.
func Recover(dataDir, nodeID, raftAddr string, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.Default()
	}
	if err := validateNodeID(nodeID); err != nil {
		return err
	}
	if _, port, err := net.SplitHostPort(raftAddr); err != nil || port == "0" {
		return fmt.Errorf("raft address %q: want the host:port this node's agent uses (--raft-addr)", raftAddr)
	}
	path := filepath.Join(dataDir, "raft.db")
	if _, err := os.Stat(path); err != nil {
		return fmt.Errorf("no raft state to recover in %s (%w); recover runs on a node that was a cluster member", dataDir, err)
	}
	bolt, err := raftboltdb.New(raftboltdb.Options{Path: path, BoltOptions: &bbolt.Options{Timeout: time.Second}})
	if err != nil {
		return fmt.Errorf("open raft log %s (stop the clusterd agent on this node first: recover needs the data dir to itself): %w",
			path, err)
	}
	err = recoverStore(bolt, dataDir, nodeID, raftAddr, logger)
	return errors.Join(err, bolt.Close())
}

func recoverStore(bolt *raftboltdb.BoltStore, dataDir, nodeID, raftAddr string, logger *slog.Logger) error {
	hlog := newHCLog(logger)
	snaps, err := raft.NewFileSnapshotStoreWithLogger(dataDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("raft snapshot store in %s: %w", dataDir, err)
	}
	// The transport is only asked to encode this node's address into the new
	// snapshot's configuration; it never connects anywhere.
	_, trans := raft.NewInmemTransport(raft.ServerAddress(raftAddr))
	defer trans.Close()
	rc := func() *raft.Config {
		c := raft.DefaultConfig()
		c.LocalID = raft.ServerID(nodeID)
		c.Logger = hlog
		return c
	}
	quiet := slog.New(slog.DiscardHandler)
	conf, err := raft.GetConfiguration(rc(), newFSM(quiet, func() {}), bolt, bolt, snaps, trans)
	if err != nil {
		return fmt.Errorf("read the raft configuration in %s: %w", dataDir, err)
	}
	var voters []Server
	for _, s := range conf.Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, Server{ID: string(s.ID), RaftAddr: string(s.Address), Voter: true})
		}
	}
	if !slices.ContainsFunc(voters, func(v Server) bool { return v.ID == nodeID }) {
		logger.Warn("recovering a node that is not a voter of the latest configuration; its log may lag the lost voters'",
			"node", nodeID, "voters", fmt.Sprint(voters))
	}
	reachable := probeVoters(context.Background(), voters, nodeID)
	if err := checkLost(voters, nodeID, reachable); err != nil {
		return err
	}
	target := raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter, ID: raft.ServerID(nodeID), Address: raft.ServerAddress(raftAddr),
	}}}
	if err := raft.RecoverCluster(rc(), newFSM(logger, func() {}), bolt, bolt, snaps, trans, target); err != nil {
		return fmt.Errorf("recover node %q in %s: %w", nodeID, dataDir, err)
	}
	var lost []string
	for _, v := range voters {
		if v.ID != nodeID {
			lost = append(lost, v.ID)
		}
	}
	marker := fmt.Sprintf("recovered as the only voter; lost voters: %s\n", strings.Join(lost, ","))
	if err := os.WriteFile(filepath.Join(dataDir, recoveredMarker), []byte(marker), 0o600); err != nil {
		return fmt.Errorf("recovered, but could not mark %s as recovered (the agent would take it for a node bootstrapped on its own if its config says join): %w", dataDir, err)
	}
	logger.Warn("recovered: this node is now the only voter; start its agent, remove the lost nodes' records "+
		"and join them again with wiped data dirs", "node", nodeID, "raft_addr", raftAddr,
		"lost_voters", strings.Join(lost, ","))
	return nil
}

// recoveredMarker is the file Recover leaves in the data dir: a one-voter store that
// was recovered from a larger cluster, not bootstrapped alone, so an agent whose
// config still says join may start from it.
const recoveredMarker = "recovered"

// Recovered reports whether Recover made dataDir's store its only voter.
func Recovered(dataDir string) bool {
	_, err := os.Stat(filepath.Join(dataDir, recoveredMarker))
	return err == nil
}

// checkLost refuses recovery while this node and the reachable voters form a
// majority of voters: the cluster can then still elect a leader on its own.
func checkLost(voters []Server, self string, reachable map[string]bool) error {
	if len(voters) <= 1 {
		return nil // a lone voter: recovery rewrites its address at most
	}
	quorum := len(voters)/2 + 1
	alive := 0
	var others []string
	for _, v := range voters {
		switch {
		case v.ID == self:
			alive++
		case reachable[v.ID]:
			alive++
			others = append(others, v.ID+" at "+v.RaftAddr)
		}
	}
	if alive < quorum {
		return nil
	}
	return fmt.Errorf("not recovering: voters %s accept connections on their raft addresses; counting this node "+
		"that is %d of %d voters, a majority, so the cluster is not lost (start the agent on this node instead; "+
		"recover only when a majority of voters is gone for good): %w",
		strings.Join(others, ", "), alive, len(voters), ErrQuorumReachable)
}

// probeVoters reports which voters other than self accept a TCP connection on
// their raft address, all probed at once.
func probeVoters(ctx context.Context, voters []Server, self string) map[string]bool {
	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards up
		up = map[string]bool{}
	)
	d := net.Dialer{Timeout: recoverProbeTimeout}
	for _, v := range voters {
		if v.ID == self {
			continue
		}
		wg.Go(func() {
			c, err := d.DialContext(ctx, "tcp", v.RaftAddr)
			if err != nil {
				return
			}
			c.Close()
			mu.Lock()
			up[v.ID] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	return up
}
