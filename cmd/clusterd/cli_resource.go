package main

import (
	"context"
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/clusterd/clusterd/health/api"
)

const resourceHelp = `Usage:
  clusterd resource add NAME --address PREFIX --interface IFNAME [flags]
  clusterd resource remove NAME
  clusterd resource list

Manages resources: cluster IP addresses that exactly one node holds at a time.

Examples:
  clusterd resource add web --address 198.18.1.10/16 --interface eth0
  clusterd resource add files --address 198.18.1.11/16 --interface eth0 \
      --netbios-name FILESRV --wins 198.18.0.1
  clusterd resource remove web`

func runResource(ctx context.Context, g *globals, args []string) error {
	if len(args) == 0 {
		return usagef("resource needs a subcommand: add, remove or list (see `clusterd resource --help`)")
	}
	switch args[0] {
	case "add":
		return runResourceAdd(ctx, g, args[1:])
	case "remove", "rm", "delete":
		return runResourceRemove(ctx, g, args[1:])
	case "list", "ls":
		return runResourceList(ctx, g, args[1:])
	case "-h", "--help", "help":
		fmt.Fprintln(g.stdout, resourceHelp)
		return errHelp
	}
	return usagef("unknown resource subcommand %q (use add, remove or list)", args[0])
}

func runResourceAdd(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "resource add", `Usage: clusterd resource add NAME --address PREFIX --interface IFNAME [flags]

Adds a cluster IP address. PREFIX is the address with the prefix length of its
subnet (198.18.1.10/16), or /32 (/128) for a host address. IFNAME is the interface
that carries the subnet on the nodes.

--on-quorum-loss keep: when the holder cannot reach a majority of the voters at all,
it keeps the address (lifetime refreshed, NetBIOS names kept, re-announced) instead
of dropping it when its lease runs out. RISK: if the majority is alive on the other
side of a partition it fails the resource over, and TWO NODES HOLD THE ADDRESS until
the partition heals (duplicate ARP answers, broken TCP sessions). If the voters
answer and no longer confirm it here, it drops at once. Kept addresses still go
when the agent dies. The default, release, never allows two holders.`)
	var r api.ResourceRequest
	var pref, poss, names, wins listFlag
	var checks rawListFlag
	fs.StringVar(&r.Address, "address", "", "cluster `PREFIX`, e.g. 198.18.1.10/16 or 2001:2::10/64 (required)")
	fs.StringVar(&r.Interface, "interface", "", "interface `IFNAME` that carries the address (required)")
	fs.Var(&pref, "preferred-owner", "preferred `NODE`, in order (repeatable)")
	fs.Var(&poss, "possible-owner", "`NODE` allowed to hold it (repeatable; default: any)")
	fs.StringVar(&r.Failback, "failback", "", "failback `POLICY`: never (default), immediate, or window:HH:MM-HH:MM (UTC)")
	fs.StringVar(&r.Group, "group", "", "`GROUP` of resources that always move together")
	fs.Var(&names, "netbios-name", "NetBIOS `NAME` (NAME means NAME<00> and NAME<20>; NAME<1b> as written; repeatable)")
	fs.Var(&wins, "wins", "WINS server `ADDRESS` (repeatable)")
	fs.StringVar(&r.NodeType, "node-type", "", "NetBIOS node `TYPE` b, p, m or h (default h with --wins, else b)")
	fs.StringVar(&r.Scope, "scope", "", "NetBIOS `SCOPE` id (default none)")
	fs.BoolVar(&r.Offline, "offline", false, "create it offline (held by no node)")
	fs.StringVar(&r.HookOnline, "hook-online", "", "`PATH` of an executable run after the address is up here (failure fails it over)")
	fs.StringVar(&r.HookOffline, "hook-offline", "", "`PATH` run before the address goes from here")
	fs.StringVar(&r.HookFailed, "hook-failed", "", "`PATH` run after the resource failed here")
	fs.StringVar(&r.HookTimeout, "hook-timeout", "", "how long a hook may run, e.g. 30s (default 30s; 1s..10m)")
	fs.StringVar(&r.OnQuorumLoss, "on-quorum-loss", "", "`POLICY` when this node cannot reach a majority of voters: release (default, safe) or keep (stays held; two holders possible, see above)")
	fs.Var(&checks, "check", "health `CHECK` run by the holder: tcp:HOST:PORT, http://URL or exec:/PATH, options ,interval=2s,timeout=1s,rise=2,fall=3,expect=200 (repeatable)")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("resource add takes exactly one NAME, got %d arguments %q", len(pos), pos)
	}
	if r.Address == "" || r.Interface == "" {
		return usagef("resource add needs --address PREFIX and --interface IFNAME (e.g. --address 198.18.1.10/16 --interface eth0)")
	}
	r.Name = pos[0]
	r.PreferredOwners, r.PossibleOwners, r.NetBIOSNames, r.WINS, r.Checks = pref, poss, names, wins, checks
	res, err := g.client().AddResource(ctx, r)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, res)
	}
	fmt.Fprintf(g.stdout, "resource %s added (%s on %s, raft index %d)\n", r.Name, r.Address, r.Interface, res.Index)
	return nil
}

func runResourceRemove(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "resource remove", "Usage: clusterd resource remove NAME\n\nRemoves a resource; its holder releases the address.")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("resource remove takes exactly one NAME")
	}
	res, err := g.client().RemoveResource(ctx, pos[0])
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, res)
	}
	fmt.Fprintf(g.stdout, "resource %s removed (raft index %d)\n", pos[0], res.Index)
	return nil
}

func runResourceList(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "resource list", "Usage: clusterd resource list\n\nLists resources with their owner and state.")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	st, err := g.client().Status(ctx)
	if err != nil {
		return err
	}
	if g.json() {
		return printJSON(g, st.Resources)
	}
	printResources(g, st.Resources)
	return nil
}

func printResources(g *globals, rs []api.ResourceStatus) {
	if len(rs) == 0 {
		fmt.Fprintln(g.stdout, "no resources (add one with `clusterd resource add`)")
		return
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE\tADDRESS\tIFACE\tOWNER\tSTATE")
	for _, r := range rs {
		owner := r.Owner
		if owner == "" {
			owner = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Name, r.Address, r.Interface, owner, r.State)
	}
	tw.Flush()
	for _, r := range rs {
		if r.Reason != "" {
			ev := ""
			if r.Event != 0 {
				ev = fmt.Sprintf(" [event %d]", r.Event)
			}
			fmt.Fprintf(g.stdout, "  %s: %s%s\n", r.Name, r.Reason, ev)
		}
		for _, n := range r.NetBIOS {
			fmt.Fprintf(g.stdout, "  %s: netbios %s %s\n", r.Name, n.Name, n.State)
		}
	}
}

func printJSON(g *globals, v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
