package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/clusterd/clusterd/health/api"
)

const groupHelp = `Usage:
  clusterd group set NAME [--hook-online PATH] [--hook-offline PATH] [--hook-failed PATH] [--hook-timeout 30s]
  clusterd group remove NAME
  clusterd group list

A group is the resources whose --group is NAME: they always run on one node and move
together. 'group set' gives the group lifecycle hooks of its own, run once per group
on the node that holds it (as with a Pacemaker group or CTDB event scripts):
  online   after every member's address and NetBIOS interface are up there; if it
           fails, the whole group fails over
  offline  before the first member goes from there (or right after, if a member
           went without warning: its lease ran out or it failed)
  failed   after a member failed there (once, until the group is up again)
Each run gets CLUSTERD_EVENT, CLUSTERD_GROUP, CLUSTERD_NODE, CLUSTERD_REASON, and the
members in CLUSTERD_RESOURCES and their addresses in CLUSTERD_ADDRESSES (space-
separated), and is killed at its timeout (default 30s, 1s..10m). Members' own hooks
run as well. Group settings need every node on a clusterd that knows them (command
version 3): upgrade all nodes first.

Examples:
  clusterd group set web --hook-online /usr/local/lib/clusterd/web-start --hook-offline /usr/local/lib/clusterd/web-stop
  clusterd resource add web-a --address 198.18.1.10/16 --interface eth0 --group web`

func runGroup(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("group needs a subcommand: set, remove or list (see `clusterd group --help`)")
	}
	switch args[0] {
	case "set":
		return runGroupSet(ctx, g, args[1:])
	case "remove", "rm", "delete":
		return runGroupRemove(ctx, g, args[1:])
	case "list", "ls":
		return runGroupList(ctx, g, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(g.stdout, groupHelp)
		return errHelp
	}
	return usagef("unknown group subcommand %q (use set, remove or list)", args[0])
}

func runGroupSet(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "group set", groupHelp)
	var r api.GroupRequest
	fs.StringVar(&r.HookOnline, "hook-online", "", "`PATH` run once every member is up here (failure fails the group over)")
	fs.StringVar(&r.HookOffline, "hook-offline", "", "`PATH` run before the first member goes from here")
	fs.StringVar(&r.HookFailed, "hook-failed", "", "`PATH` run after a member failed here")
	fs.StringVar(&r.HookTimeout, "hook-timeout", "", "how long a hook may run, e.g. 30s (default 30s; 1s..10m)")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("group set takes exactly one NAME, got %d arguments %q", len(pos), pos)
	}
	if r.HookOnline == "" && r.HookOffline == "" && r.HookFailed == "" {
		return usagef("group set needs at least one of --hook-online, --hook-offline, --hook-failed (to drop the settings: clusterd group remove %s)", pos[0])
	}
	r.Name = pos[0]
	res, err := g.client().PutGroup(ctx, r)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, res)
	}
	fmt.Fprintf(g.stdout, "group %s set (raft index %d)\n", r.Name, res.Index)
	return nil
}

func runGroupRemove(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "group remove", "Usage: clusterd group remove NAME\n\nRemoves a group's settings (its hooks); its members stay, and still move together.")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("group remove takes exactly one NAME")
	}
	res, err := g.client().DeleteGroup(ctx, pos[0])
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, res)
	}
	fmt.Fprintf(g.stdout, "group %s settings removed (raft index %d)\n", pos[0], res.Index)
	return nil
}

func runGroupList(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "group list", "Usage: clusterd group list\n\nLists the groups that have settings, with their hooks.")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	gs, err := g.client().Groups(ctx)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, gs)
	}
	if len(gs) == 0 {
		fmt.Fprintln(g.stdout, "no group settings (add some with `clusterd group set`)")
		return nil
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tONLINE\tOFFLINE\tFAILED\tTIMEOUT")
	for _, r := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, orDash(r.HookOnline), orDash(r.HookOffline), orDash(r.HookFailed), orDash(r.HookTimeout))
	}
	return tw.Flush()
}
