package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/clusterd/clusterd/health/api"
)

func runStatus(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "status", `Usage: clusterd status [-o json]

Shows the cluster's nodes and resources: who holds each address and in which state.
JSON holds resources[].{name,address,interface,owner,state} and nodes[].{id,state,leader}.`)
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	st, err := g.client().Status(ctx)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, st)
	}
	leader := st.Leader
	if leader == "" {
		leader = "none (no quorum?)"
	}
	fmt.Fprintf(g.stdout, "leader %s, raft index %d, answered by %s\n", leader, st.Index, st.Self)
	if st.Maintenance {
		fmt.Fprintf(g.stdout, "MAINTENANCE MODE: placement frozen (%s); `clusterd maintenance off` to end it\n", orDash(st.MaintenanceReason))
	}
	fmt.Fprintln(g.stdout)
	printNodes(g, st.Nodes)
	fmt.Fprintln(g.stdout)
	printResources(g, st.Resources)
	return nil
}

func runNodes(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "nodes", "Usage: clusterd nodes [-o json]\n\nLists the cluster's nodes.")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	st, err := g.client().Status(ctx)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, st.Nodes)
	}
	printNodes(g, st.Nodes)
	return nil
}

func printNodes(g *globals, ns []api.NodeStatus) {
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATE\tROLE\tHELD\tRAFT")
	for _, n := range ns {
		role := "member"
		if n.Voter {
			role = "voter"
		}
		if n.Leader {
			role = "leader"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", n.ID, n.State, role, n.Held, n.RaftAddr)
	}
	tw.Flush()
}

func runMove(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "move", `Usage: clusterd move NAME [--to NODE] [--wait]

Moves a resource gracefully: the old node releases the address first, then the new
node adds and announces it. Without --to, placement picks the best other node. The
move sticks: placement never moves it back by itself.`)
	to := fs.String("to", "", "target `NODE` (default: placement chooses)")
	wait := fs.Bool("wait", false, "wait until the address is online on the new node, printing progress")
	timeout := fs.Duration("timeout", 30*time.Second, "how long --wait waits")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("move takes exactly one resource NAME")
	}
	start := time.Now()
	res, err := g.client().Move(ctx, pos[0], api.MoveRequest{To: *to})
	if err != nil {
		return err
	}
	if g.json() && !*wait {
		return printJSON(g, res)
	}
	for _, m := range res.Moves {
		fmt.Fprintf(g.stdout, "moving %s: %s -> %s\n", m.Resource, m.From, m.To)
	}
	if !*wait || len(res.Moves) == 0 {
		return nil
	}
	target := res.Moves[0].To
	return waitFor(ctx, g, *timeout, func(st api.Status) (bool, string) {
		for _, r := range st.Resources {
			if r.Name == pos[0] {
				return r.Owner == target && r.State == api.StateOnline,
					fmt.Sprintf("%s on %s: %s", r.Name, orDash(r.Owner), r.State)
			}
		}
		return false, "resource gone"
	}, start)
}

func runDrain(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "drain", `Usage: clusterd drain NODE [--wait]

Moves every resource off NODE gracefully and keeps NODE from holding any until
'clusterd undrain NODE'.`)
	wait := fs.Bool("wait", false, "wait until NODE holds nothing and every moved resource is online")
	timeout := fs.Duration("timeout", 60*time.Second, "how long --wait waits")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("drain takes exactly one NODE")
	}
	start := time.Now()
	res, err := g.client().SetDraining(ctx, pos[0], true)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "node %s draining (raft index %d)\n", pos[0], res.Index)
	if !*wait {
		return nil
	}
	return waitFor(ctx, g, *timeout, func(st api.Status) (bool, string) {
		left, pending := 0, 0
		for _, r := range st.Resources {
			if r.Owner == pos[0] {
				left++
			} else if r.State != api.StateOnline && r.State != api.StateOffline {
				pending++
			}
		}
		return left == 0 && pending == 0, fmt.Sprintf("%d resources left on %s, %d coming online elsewhere", left, pos[0], pending)
	}, start)
}

func runUndrain(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "undrain", `Usage: clusterd undrain NODE

Lets NODE hold resources again. Nothing moves back by itself unless a resource's
failback policy asks for it; use 'clusterd rebalance' to spread on demand.`)
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("undrain takes exactly one NODE")
	}
	res, err := g.client().SetDraining(ctx, pos[0], false)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "node %s undrained (raft index %d)\n", pos[0], res.Index)
	return nil
}

func runRebalance(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "rebalance", `Usage: clusterd rebalance [--dry-run]

Spreads resources evenly over the nodes with the fewest moves (each move graceful).`)
	dry := fs.Bool("dry-run", false, "only print the moves")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	res, err := g.client().Rebalance(ctx, *dry)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, res)
	}
	if len(res.Moves) == 0 {
		fmt.Fprintln(g.stdout, "already balanced: no moves")
	}
	verb := "moving"
	if *dry {
		verb = "would move"
	}
	for _, m := range res.Moves {
		fmt.Fprintf(g.stdout, "%s %s: %s -> %s\n", verb, m.Resource, m.From, m.To)
	}
	return nil
}

func runLeave(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "leave", `Usage: clusterd leave NODE

Removes NODE from the cluster (raft configuration and node list); its resources are
placed elsewhere. Use it for a node that left for good or died and will not return.`)
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("leave takes exactly one NODE")
	}
	res, err := g.client().RemoveNode(ctx, pos[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "node %s removed (raft index %d)\n", pos[0], res.Index)
	return nil
}

// waitFor polls the status until done says so, printing each new progress line.
func waitFor(ctx context.Context, g *globals, timeout time.Duration, done func(api.Status) (bool, string), start time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	last := ""
	for {
		st, err := g.client().Status(ctx)
		if err == nil {
			ok, line := done(st)
			if line != last {
				fmt.Fprintf(g.stdout, "  %6dms  %s\n", time.Since(start).Milliseconds(), line)
				last = line
			}
			if ok {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gave up waiting after %s (last: %s); check `clusterd status`", timeout, last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
