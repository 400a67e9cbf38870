package main

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/clusterd/clusterd/cmd/clusterd/internal/agent"
	"github.com/clusterd/clusterd/consensus"
)

func runMaintenance(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "maintenance", `Usage: clusterd maintenance on [--reason TEXT] | off

Freezes placement for network work: no moves and no failovers started by the
cluster while it is on. Leases still protect against two holders: a holder cut off
from the voters still drops its addresses at its lease deadline.`)
	reason := fs.String("reason", "", "why (shown in status)")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (pos[0] != "on" && pos[0] != "off") {
		return usagef("maintenance takes on or off")
	}
	res, err := g.client().SetMaintenance(ctx, pos[0] == "on", *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "maintenance %s (raft index %d)\n", pos[0], res.Index)
	return nil
}

func runSnapshot(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "snapshot", `Usage: clusterd snapshot save FILE
       clusterd snapshot restore FILE [--yes]

save writes a backup of the whole replicated state (resources, nodes, settings) as a
versioned JSON document. restore replaces every resource of this cluster with the
backup's (one raft entry, all or nothing); placement then puts them on this
cluster's nodes. It asks first unless --yes.`)
	yes := fs.Bool("yes", false, "restore without asking")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || (pos[0] != "save" && pos[0] != "restore") {
		return usagef("snapshot takes save FILE or restore FILE")
	}
	file := pos[1]
	if pos[0] == "save" {
		doc, err := g.client().SnapshotSave(ctx)
		if err != nil {
			return err
		}
		if err := os.WriteFile(file, doc, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(g.stdout, "saved the replicated state to %s (%d bytes)\n", file, len(doc))
		return nil
	}
	doc, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	parsed, err := consensus.ParseStateDocument(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if !*yes {
		fmt.Fprintf(g.stdout, "replace every resource of the cluster with the %d in %s? [y/N] ", len(parsed.State.Resources), file)
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		if !strings.HasPrefix(strings.ToLower(strings.TrimSpace(line)), "y") {
			return fmt.Errorf("restore cancelled")
		}
	}
	res, err := g.client().SnapshotRestore(ctx, doc)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "restored %d resources from %s (raft index %d)\n", len(parsed.State.Resources), file, res.Index)
	return nil
}

func runRecover(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "recover", `Usage: clusterd recover --config FILE
       clusterd recover --node-id ID --data-dir DIR --raft-addr HOST:PORT

Disaster recovery, with this node's agent STOPPED: when a majority of the voters is
gone for good, makes this node the only voter of a new configuration, keeping its
log and state. It refuses when a majority of the voters still answers (then there is
nothing to recover: start the agent). Afterwards start the agent, remove the lost
nodes with 'clusterd leave', and join new nodes with fresh data directories.`)
	cfgFile := fs.String("config", "", "the agent's TOML `FILE`")
	var cfg agent.Config
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's `ID`")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "its data `DIR`")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "", "its raft `HOST:PORT`")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	if *cfgFile != "" {
		fc, err := agent.LoadFile(*cfgFile)
		if err != nil {
			return err
		}
		cfg.NodeID, cfg.DataDir, cfg.RaftAddr = fc.NodeID, fc.DataDir, fc.RaftAddr
	}
	if cfg.NodeID == "" || cfg.DataDir == "" || cfg.RaftAddr == "" {
		return usagef("recover needs --config FILE, or --node-id, --data-dir and --raft-addr")
	}
	log := slog.New(slog.NewTextHandler(g.stderr, nil))
	if err := consensus.Recover(cfg.DataDir, cfg.NodeID, cfg.RaftAddr, log); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "recovered: %s is now the only voter of its cluster; start its agent, then `clusterd leave` the lost nodes\n", cfg.NodeID)
	return nil
}
