package main

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/test/cluster"
)

// placement is case 4: consensus's own BenchmarkPlace10k, and the moves when a node
// joins, measured here with consensus.Place on a generated state (no lab).
func (e *env) placement(ctx context.Context) error {
	const cs = "placement"
	e.placeBench(ctx, cs)
	j := joinMoves(10000, 7, time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC))
	cmd := "consensus.Place on 10,000 new resources over 7 nodes (in process)"
	e.fig(cs, "Place: 10,000 new resources over 7 nodes", ms(j.initial), "ms", 100, cmd, fmt.Sprintf("%d moves, per node %v", j.placed, j.perNode))
	cmd = "consensus.Place after an 8th node joins 10,000 resources on 7"
	e.fig(cs, "moves when an 8th node joins (Place)", float64(len(j.onJoin)), "moves", 0, cmd,
		fmt.Sprintf("planned in %.1f ms; placement never moves a healthy resource by itself", ms(j.joinTime)))
	cmd = "consensus.Rebalance after the join (`clusterd rebalance`)"
	e.fig(cs, "moves to even out after the join (Rebalance)", float64(len(j.rebalance)), "moves", 0, cmd,
		fmt.Sprintf("minimum %d (the new node's fair share); all to %s: %v; planned in %.1f ms", j.minRebalance, j.newNode, j.allToNew, ms(j.rebalanceTime)))
	return nil
}

// placeBench runs consensus's BenchmarkPlace10k and reports its median.
func (e *env) placeBench(ctx context.Context, cs string) {
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkPlace10k$", "-benchtime", "20x", "-count", "5", "./consensus/"}
	cmd := "go " + strings.Join(args, " ")
	out, err := exec.CommandContext(ctx, "go", args...).CombinedOutput()
	if err != nil {
		e.failed(cs, "BenchmarkPlace10k (10,000 resources, 7 nodes, one dead)", "ms", 100, cmd, fmt.Errorf("%v: %s", err, lastLines(string(out), 5)))
		return
	}
	nsPerOp, moves := parseBench(string(out), "BenchmarkPlace10k")
	if len(nsPerOp) == 0 {
		e.failed(cs, "BenchmarkPlace10k (10,000 resources, 7 nodes, one dead)", "ms", 100, cmd, fmt.Errorf("no benchmark line in: %s", lastLines(string(out), 5)))
		return
	}
	slices.Sort(nsPerOp)
	e.fig(cs, "BenchmarkPlace10k (10,000 resources, 7 nodes, one dead)", nsPerOp[len(nsPerOp)/2]/1e6, "ms", 100, cmd,
		fmt.Sprintf("median of %d, range %.1f-%.1f ms; %.0f moves", len(nsPerOp), nsPerOp[0]/1e6, nsPerOp[len(nsPerOp)-1]/1e6, moves))
}

// parseBench returns ns/op of every result line of the named benchmark and the last
// "moves" metric.
func parseBench(out, name string) (nsPerOp []float64, moves float64) {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || (f[0] != name && !strings.HasPrefix(f[0], name+"-")) {
			continue
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				nsPerOp = append(nsPerOp, v)
			case "moves":
				moves = v
			}
		}
	}
	return nsPerOp, moves
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

// joined is what joinMoves measured.
type joined struct {
	initial       time.Duration // Place of every resource from nothing
	placed        int
	perNode       []int
	newNode       string
	joinTime      time.Duration
	onJoin        []consensus.Move // Place after the join
	rebalanceTime time.Duration
	rebalance     []consensus.Move // Rebalance after the join
	minRebalance  int              // the new node's fair share: the fewest moves that even out
	allToNew      bool             // every rebalance move goes to the new node
}

// joinMoves places n plain resources over k live nodes, applies the plan, lets a
// node k+1 join, and plans again with Place and with Rebalance.
func joinMoves(n, k int, now time.Time) joined {
	in := consensus.Input{Nodes: map[string]consensus.Node{}, Alive: map[string]bool{},
		Resources: map[string]consensus.Resource{}, Assignments: map[string]consensus.Assignment{}, Now: now}
	for i := 1; i <= k; i++ {
		id := fmt.Sprintf("n%d", i)
		in.Nodes[id], in.Alive[id] = consensus.Node{ID: id, Voter: i <= 5}, true
	}
	for i, a := range cluster.AddrRange(firstAddr, n) {
		name := fmt.Sprintf("vip-%05d", i+1)
		in.Resources[name] = consensus.Resource{Name: name, Address: netip.PrefixFrom(a, 16), Interface: "eth0"}
	}
	var j joined
	start := time.Now()
	moves := consensus.Place(in)
	j.initial, j.placed = time.Since(start), len(moves)
	load := map[string]int{}
	for _, m := range moves {
		in.Assignments[m.Resource] = consensus.Assignment{Resource: m.Resource, Node: m.To, Epoch: 2}
		load[m.To]++
	}
	for i := 1; i <= k; i++ {
		j.perNode = append(j.perNode, load[fmt.Sprintf("n%d", i)])
	}
	j.newNode = fmt.Sprintf("n%d", k+1)
	in.Nodes[j.newNode], in.Alive[j.newNode] = consensus.Node{ID: j.newNode}, true
	start = time.Now()
	j.onJoin = consensus.Place(in)
	j.joinTime = time.Since(start)
	start = time.Now()
	j.rebalance = consensus.Rebalance(in)
	j.rebalanceTime = time.Since(start)
	j.minRebalance = n / (k + 1)
	j.allToNew = !slices.ContainsFunc(j.rebalance, func(m consensus.Move) bool { return m.To != j.newNode })
	return j
}
