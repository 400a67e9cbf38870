package main

import (
	"context"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/cmd/clusterd/internal/agent"
)

const fenceHelp = `Usage: clusterd fence --data-dir DIR

The agent's fencing companion; the agent starts it, you do not. It reads lease
deadlines from its standard input and removes every cluster address recorded in
DIR/addresses.json the moment its input closes (the agent died) or a deadline passes
without a newer one (the agent stalled). Under systemd the unit runs
'clusterd release --data-dir DIR' as ExecStopPost for the same purpose.`

func runFence(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "fence", fenceHelp)
	dir := fs.String("data-dir", "", "the agent's data `DIR`")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("fence needs --data-dir DIR")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "fence")
	return agent.RunFence(ctx, *dir, pollableStdin(), log)
}

// pollableStdin returns standard input set non-blocking when it is a pipe (the
// agent's), so reads wait in Go's poller. A blocking read(2) parks the reader in a
// system call between the agent's lines (40 a second), and each time Go's sysmon
// takes its P back after 10 ms and restarts its 20 µs polling: about 1,600 wake-ups
// and 1.6 % of a core a second for an idle companion. A terminal or file is left as
// it is.
func pollableStdin() *os.File {
	var st unix.Stat_t
	if err := unix.Fstat(0, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return os.Stdin
	}
	if err := unix.SetNonblock(0, true); err != nil {
		return os.Stdin
	}
	return os.NewFile(0, "/dev/stdin")
}

const releaseHelp = `Usage: clusterd release --data-dir DIR

Removes every cluster address the agent with data directory DIR recorded as added,
leaving every other address alone. For systemd's ExecStopPost, and by hand after an
agent was killed together with its fencing companion.`

func runRelease(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "release", releaseHelp)
	dir := fs.String("data-dir", "", "the agent's data `DIR`")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return usagef("release needs --data-dir DIR")
	}
	n, err := agent.Release(*dir)
	if err != nil {
		return err
	}
	if !g.json() {
		g.printf("removed %d cluster addresses recorded in %s\n", n, *dir)
	}
	return nil
}
