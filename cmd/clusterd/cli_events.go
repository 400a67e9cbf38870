package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// event mirrors the agent's event JSON.
type event struct {
	Seq      uint64            `json:"seq"`
	Time     time.Time         `json:"time"`
	ID       int               `json:"id"`
	Node     string            `json:"node"`
	Resource string            `json:"resource,omitempty"`
	Message  string            `json:"message"`
	Timeline map[string]string `json:"timeline,omitempty"`
}

func runEvents(ctx context.Context, g *globals, args []string) error {
	fs := newFlags(g, "events", `Usage: clusterd events [--follow] [-o json]

Shows the cluster's events from every node, oldest first, with their stable ids:
1044 NetBIOS interface could not be created, 1049 address in use on the network,
1069 resource failed, 1078 WINS registration failed, 1135 node down or removed,
1177 lease lost (quorum lost from that node), 1201 failover timeline,
1254 failover threshold reached, 4320 NetBIOS name conflict.`)
	follow := fs.Bool("follow", false, "keep printing new events until interrupted")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		var evs []event
		if err := g.client().Events(ctx, &evs); err != nil {
			return err
		}
		sort.SliceStable(evs, func(i, j int) bool { return evs[i].Time.Before(evs[j].Time) })
		for _, e := range evs {
			key := fmt.Sprintf("%s/%d", e.Node, e.Seq)
			if seen[key] {
				continue
			}
			seen[key] = true
			if g.json() {
				printJSON(g, e)
				continue
			}
			res := ""
			if e.Resource != "" {
				res = " [" + e.Resource + "]"
			}
			fmt.Fprintf(g.stdout, "%s %-4d %s%s %s\n", e.Time.Local().Format("15:04:05.000"), e.ID, e.Node, res, e.Message)
			if len(e.Timeline) > 0 {
				var keys []string
				for k := range e.Timeline {
					keys = append(keys, k)
				}
				sort.Slice(keys, func(i, j int) bool { return e.Timeline[keys[i]] < e.Timeline[keys[j]] })
				var parts []string
				for _, k := range keys {
					t, err := time.Parse(time.RFC3339Nano, e.Timeline[k])
					if err == nil {
						parts = append(parts, k+" "+t.Local().Format("15:04:05.000"))
					}
				}
				fmt.Fprintf(g.stdout, "    timeline: %s\n", strings.Join(parts, ", "))
			}
		}
		if !*follow {
			if len(evs) == 0 && !g.json() {
				fmt.Fprintln(g.stdout, "no events")
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func runCompletion(_ context.Context, g *globals, args []string) error {
	fs := newFlags(g, "completion", "Usage: clusterd completion bash\n\nPrints a bash completion script: `source <(clusterd completion bash)`.")
	pos, err := parse(g, fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "bash" {
		return usagef("completion supports bash: clusterd completion bash")
	}
	var names []string
	for _, c := range commands() {
		names = append(names, c.name)
	}
	fmt.Fprintf(g.stdout, `_clusterd() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "%s --help --api --token --token-file -o" -- "$cur") )
  elif [ "${COMP_WORDS[1]}" = resource ] && [ "$COMP_CWORD" -eq 2 ]; then
    COMPREPLY=( $(compgen -W "add remove list" -- "$cur") )
  else
    COMPREPLY=( $(compgen -W "--help --api --token -o --wait --to --interface --address --netbios-name --wins" -- "$cur") )
  fi
}
complete -F _clusterd clusterd
`, strings.Join(names, " "))
	return nil
}
