package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/clusterd/clusterd/cmd/clusterd/internal/agent"
)

const agentHelp = `Usage:
  clusterd agent --dev [--api-addr HOST:PORT]
  clusterd agent --config FILE
  clusterd agent --node-id ID --data-dir DIR --raft-addr HOST:PORT --api-addr HOST:PORT
                 (--bootstrap | --join URL)

Runs the cluster daemon on this node. It holds the cluster addresses the cluster
assigns to it, announces them, and serves the API, /healthz, /readyz and /metrics on
--api-addr (default 127.0.0.1:7400; raft on 127.0.0.1:7401).

--dev starts a throwaway one-node cluster (a single raft voter, data in a temporary
directory removed at exit) with the API on 127.0.0.1:7400.

--config FILE reads the same keys from TOML: node_id, data_dir, raft_addr, api_addr,
bootstrap, join, voter, profile, log_level, log_format, address_lifetime, join_timeout, token, token_file, tls_ca,
tls_cert, tls_key. Flags given next to --config
override the file.

Restarting with the same --data-dir needs neither --bootstrap nor --join: the node
rejoins from its stored state. On SIGTERM or Ctrl-C the agent releases its
addresses and stops.`

func runAgent(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "agent", agentHelp)
	var cfg agent.Config
	configFile := fs.String("config", "", "TOML config `FILE`")
	fs.BoolVar(&cfg.Dev, "dev", false, "run a throwaway one-node cluster")
	fs.StringVar(&cfg.NodeID, "node-id", "", "this node's unique `ID`")
	fs.StringVar(&cfg.DataDir, "data-dir", "", "`DIR` for raft data and the address record")
	fs.StringVar(&cfg.RaftAddr, "raft-addr", "", "raft `HOST:PORT` (bind and advertise)")
	fs.StringVar(&cfg.APIAddr, "api-addr", "", "API and health `HOST:PORT` (default "+agent.DefaultAPIAddr+")")
	fs.BoolVar(&cfg.Bootstrap, "bootstrap", false, "start a new cluster with this node as its first voter")
	fs.StringVar(&cfg.Join, "join", "", "join the cluster through any node's API `URL`")
	fs.StringVar(&cfg.TLSCA, "tls-ca", "", "cluster CA `FILE` (PEM) for mutual TLS")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "this node's certificate `FILE` (PEM)")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "this node's key `FILE` (PEM)")
	fs.StringVar(&cfg.Token, "token", "", "the cluster `TOKEN` (joining nodes; the bootstrap node makes one)")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "read the cluster token from `FILE`")
	member := fs.Bool("member", false, "join as a member that holds addresses but does not vote")
	fs.StringVar(&cfg.Profile, "profile", "", "timer `PROFILE`: default (failover ~0.2 s), fast (~0.1 s, less room for a loaded machine) or relaxed (~0.9 s plus adding the addresses, for thousands of addresses per node on busy hosts); the same on every node")
	fs.StringVar(&cfg.LogLevel, "log-level", "", "log `LEVEL`: debug, info, warn, error")
	fs.StringVar(&cfg.LogFormat, "log-format", "", "log `FORMAT`: text or json")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("agent takes no arguments, got %q", pos)
	}
	if *configFile != "" {
		fileCfg, err := agent.LoadFile(*configFile)
		if err != nil {
			return err
		}
		fs.Visit(func(f *flagT) { overrideFromFlag(fileCfg, &cfg, f.Name) })
		fileCfg.Dev = cfg.Dev
		cfg = *fileCfg
	}
	if cfg.TLSCA == "" && g.tlsCA != "" {
		cfg.TLSCA = g.tlsCA // --tls-ca is also a global flag, taken out of the arguments first
	}
	if *member {
		v := false
		cfg.Voter = &v
	}
	if err := cfg.Validate(); err != nil {
		return usagef("%v", err)
	}
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[cfg.LogLevel]
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	return agent.Run(ctx, &cfg, slog.New(h), g.stdout)
}
