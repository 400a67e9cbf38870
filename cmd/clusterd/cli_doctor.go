package main

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/clusterd/clusterd/cmd/clusterd/internal/agent"
	"github.com/clusterd/clusterd/health/doctor"
)

const doctorHelp = `Usage: clusterd doctor [--config FILE | --data-dir DIR] [--interface IF ...]
                       [--address IP ...] [--api URL] [-o json]

A preflight for this node: what will stop clusterd from working here, and how to
fix it. One line per check, [ok], [info], [warn] or [FAIL], with the fix under
each warning and failure. Run it as root, the way the agent runs.

Checks:
  capabilities  CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE of this process
  interfaces    every interface the resources name exists here and is up
  sysctls       promote_secondaries, arp_ignore, arp_announce, arp_filter per
                interface, disable_ipv6 where IPv6 addresses go, ip_nonlocal_bind
  UDP 137       another process bound to UDP 137 on a cluster address or the
                wildcard (from /proc/net/udp, which also shows sockets that share
                the port); doctor binds each contested address for an instant with
                SO_REUSEADDR, as clusterd does, to tell a socket that shares the
                port (nmbd: coexists) from one that holds it exclusively (blocks)
  peers         TCP connect to every other node's raft and API address
  clock         wall-clock steps during a short sample, and whether a time daemon
                keeps the kernel clock synchronised (leases use CLOCK_BOOTTIME)

What it knows about the cluster comes from GET /v1/status of the agent's API
(--api; default the config's api_addr, $CLUSTERD_API or http://127.0.0.1:7400):
the resources' interfaces and addresses and the other nodes. The address record
DATA_DIR/addresses.json (--data-dir, or data_dir in --config) adds the addresses
this node holds; --interface and --address add more, e.g. before the cluster
exists. --config also says which node this is (node_id).

Exit codes:
  0 nothing blocks (warnings may remain); 1 something blocks (a [FAIL] line);
  2 bad command line.

Examples:
  clusterd doctor --config /etc/clusterd/clusterd.toml
  clusterd doctor --interface eth0 --address 198.18.1.10     # before the first start`

func runDoctor(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "doctor", doctorHelp)
	configFile := fs.String("config", "", "the agent's TOML config `FILE` (node_id, data_dir, api_addr)")
	dataDir := fs.String("data-dir", "", "the agent's data `DIR` (for its address record)")
	var ifaces, addrs listFlag
	fs.Var(&ifaces, "interface", "interface `IF` cluster addresses go on (repeatable)")
	fs.Var(&addrs, "address", "cluster `IP` or prefix (repeatable)")
	timeout := fs.Duration("timeout", doctor.DefaultDialTimeout, "per-peer TCP connect `TIMEOUT`")
	sample := fs.Duration("clock-sample", doctor.DefaultClockWindow, "how long to watch for clock steps (`DURATION`)")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("doctor takes no arguments, got %q", pos)
	}
	if *timeout <= 0 || *sample <= 0 {
		return usagef("--timeout and --clock-sample must be positive durations (e.g. 1s)")
	}
	var c doctor.Cluster
	for _, name := range ifaces {
		c.AddInterface(name, "--interface", false)
	}
	for _, a := range addrs {
		ip, err := parseAddrOrPrefix(a)
		if err != nil {
			return usagef("--address %q is not an IP address or prefix (e.g. 198.18.1.10 or 198.18.1.10/16)", a)
		}
		c.AddAddress(ip)
	}

	pre, err := learnCluster(ctx, g, &c, *configFile, *dataDir)
	if err != nil {
		return err
	}
	findings := append(pre, doctor.Run(ctx, doctor.Options{
		Interfaces: c.Interfaces, Addresses: c.Addresses, Peers: c.Peers,
		DialTimeout: *timeout, ClockWindow: *sample,
	})...)
	if g.json() {
		err = doctor.WriteJSON(g.stdout, findings)
	} else {
		err = doctor.WriteText(g.stdout, findings)
	}
	if err != nil {
		return err
	}
	if doctor.Summarize(findings).Blocking > 0 {
		return exitError{exitFailure}
	}
	return nil
}

// learnCluster adds to c what the config, the address record and the agent's API
// say about the cluster, and reports how each answered.
func learnCluster(ctx context.Context, g *globals, c *doctor.Cluster, configFile, dataDir string) ([]doctor.Finding, error) {
	var pre []doctor.Finding
	nodeID, apiURL, token := "", g.api, ""
	if configFile != "" {
		cfg, err := agent.LoadFile(configFile)
		if err != nil {
			return nil, usagef("%v", err)
		}
		nodeID, token = cfg.NodeID, cfg.Token
		if dataDir == "" {
			dataDir = cfg.DataDir
		}
		if g.api == defaultAPI && os.Getenv("CLUSTERD_API") == "" {
			apiURL = apiURLOf(cfg.APIAddr, cfg.TLSCA != "")
		}
		// The node's own certificate authenticates it to its API like the token.
		if g.tlsCA == "" && g.tlsCert == "" {
			g.tlsCA, g.tlsCert, g.tlsKey = cfg.TLSCA, cfg.TLSCert, cfg.TLSKey
		}
	}
	if dataDir != "" {
		rec, err := doctor.ReadRecord(dataDir)
		pre = append(pre, doctor.RecordFinding(dataDir, rec, err))
		c.AddRecord(rec)
	}

	client := g.client()
	client.Base = strings.TrimRight(apiURL, "/")
	// Unless a token was given, the node's own is the one to use: the config's,
	// else DATA_DIR/token (every node keeps it there), before ~/.clusterd-token.
	given := g.token != "" || g.tokenFile != "" || os.Getenv("CLUSTERD_TOKEN") != "" || os.Getenv("CLUSTERD_TOKEN_FILE") != ""
	if token == "" && dataDir != "" {
		if b, err := os.ReadFile(filepath.Join(dataDir, "token")); err == nil {
			token = strings.TrimSpace(string(b))
		}
	}
	if !given && token != "" {
		client.Token = token
	}
	actx, cancel := context.WithTimeout(ctx, 3*time.Second)
	st, err := client.Status(actx)
	cancel()
	pre = append(pre, doctor.APIFinding(client.Base, st, err))
	if err == nil {
		if err := c.AddStatus(st, nodeID); err != nil {
			pre = append(pre, doctor.Finding{Check: "api", Severity: doctor.Warn, Message: err.Error(),
				Fix: "correct the resource with `clusterd resource add` (same name) or `clusterd apply -f`"})
		}
	}

	return pre, nil
}

func parseAddrOrPrefix(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Addr(), nil
	}
	return netip.ParseAddr(s)
}

// apiURLOf turns an api_addr into a URL this host can call: a wildcard listener is
// reached on loopback; an agent with TLS serves HTTPS.
func apiURLOf(hostPort string, https bool) string {
	scheme := "http://"
	if https {
		scheme = "https://"
	}
	if hostPort == "" {
		hostPort = agent.DefaultAPIAddr
	}
	host, port, err := net.SplitHostPort(hostPort)
	if err != nil {
		return scheme + hostPort
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return scheme + net.JoinHostPort(host, port)
}
