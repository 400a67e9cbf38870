// Command nemesis is clusterd's longer randomized safety run: a cluster in a lab with
// several cluster addresses, and for the given duration a random fault every few
// seconds (kill -9 of an agent, of agent and companion, SIGSTOP, host death, a node
// cut off from the others, a minority split, a voter restart, 20 % loss), healed
// before the next. The overlap recorder watches every node's kernel and the client's
// ARP answers throughout; the run fails if two nodes ever held an address at once or
// an address was left behind. `scripts/nemesis --help`.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "nemesis: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("nemesis", flag.ContinueOnError)
	dur := fs.Duration("duration", 3*time.Minute, "how long to inject faults")
	nodes := fs.Int("nodes", 3, "nodes (3 or 5 voters)")
	vips := fs.Int("vips", 4, "cluster addresses")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "random seed (printed; reuse it to replay the same fault sequence)")
	profile := fs.String("profile", "default", "timer profile: default or fast")
	bin := fs.String("bin", os.Getenv("CLUSTERD_BIN"), "clusterd binary")
	extra := fs.String("extra", "", "extra agent config `TOML` lines, e.g. 'realtime_priority = 0' (nice -10 only, to compare)")
	faultList := fs.String("faults", "kill9,kill9-all,sigstop,hostdeath,isolate,split,voter-restart,loss", "faults to draw from; \"none\" only watches (a steady run: any failover fails it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" {
		return fmt.Errorf("give --bin or CLUSTERD_BIN (scripts/nemesis builds it)")
	}
	rng := rand.New(rand.NewPCG(*seed, 1))
	fmt.Printf("nemesis: seed %d, %d nodes, %d addresses, profile %s, %s\n", *seed, *nodes, *vips, *profile, *dur)

	l, err := lab.Create(ctx, lab.Options{Nodes: *nodes, Client: true})
	if err != nil {
		return err
	}
	defer l.Close()
	dir, err := os.MkdirTemp("", "clusterd-nemesis-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c := cluster.New(l, *bin, dir)
	opts := cluster.Options{Profile: *profile, Extra: "address_lifetime = \"4s\"\n" + strings.ReplaceAll(*extra, `\n`, "\n") + "\n"}
	if err := c.Bootstrap(ctx, *nodes, opts); err != nil {
		return err
	}
	n1 := c.Agent(1, opts)
	var addrs []netip.Addr
	for i := 0; i < *vips; i++ {
		ip := netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)})
		addrs = append(addrs, ip)
		if _, err := c.CLI(ctx, n1, "resource", "add", fmt.Sprintf("v%d", i), "--address", ip.String()+"/16", "--interface", "eth0"); err != nil {
			return err
		}
	}
	if err := converge(ctx, c, *nodes, *vips); err != nil {
		return fmt.Errorf("initial convergence: %w", err)
	}
	rec, err := cluster.NewRecorder(l, addrs)
	if err != nil {
		return err
	}
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	recDone := make(chan error, 1)
	go func() { recDone <- rec.Run(rctx) }()
	<-rec.Ready()

	faults := strings.Split(*faultList, ",")
	counts := map[string]int{}
	end := time.Now().Add(*dur)
	if *faultList == "none" {
		fmt.Printf("  steady run: no faults for %s\n", *dur)
		select {
		case <-ctx.Done():
		case <-time.After(*dur):
		}
	}
	for i := 1; *faultList != "none" && time.Now().Before(end) && ctx.Err() == nil; i++ {
		f := faults[rng.IntN(len(faults))]
		victim := c.Agent(1+rng.IntN(*nodes), opts)
		start := time.Now()
		if err := inject(ctx, c, rec, f, victim, *nodes, opts, rng); err != nil {
			fmt.Printf("  %3d %-13s %s: error: %v\n", i, f, victim.ID, err)
		}
		if err := converge(ctx, c, *nodes, *vips); err != nil {
			fmt.Printf("  %3d %-13s %s: did not converge: %v\n", i, f, victim.ID, err)
		} else {
			fmt.Printf("  %3d %-13s %-3s healed and converged after %s\n", i, f, victim.ID, time.Since(start).Round(time.Millisecond))
		}
		counts[f]++
	}
	st, err := c.Client(n1).Status(ctx)
	if err != nil {
		return err
	}
	owners := map[netip.Addr]string{}
	for _, r := range st.Resources {
		owners[netip.MustParsePrefix(r.Address).Addr()] = r.Owner
	}
	time.Sleep(300 * time.Millisecond)
	rep := rec.Report(owners)
	rcancel()
	<-recDone
	fmt.Printf("\nfaults: %v\n%s\n", counts, rep)
	if err := rep.Err(); err != nil {
		return fmt.Errorf("seed %d: %w", *seed, err)
	}
	if *faultList == "none" {
		moved := 0
		for _, v := range rep.VIPs {
			if len(v.Intervals) != 1 {
				moved++
			}
		}
		if moved > 0 {
			return fmt.Errorf("steady run: %d of %d addresses moved or blinked without any fault (false failovers)", moved, len(rep.VIPs))
		}
		fmt.Printf("nemesis: steady run of %s: every address stayed on its node (no false failover)\n", *dur)
	}
	fmt.Println("nemesis: no two holders, nothing left behind")
	return nil
}

// inject applies one fault, keeps it a moment, and heals it.
func inject(ctx context.Context, c *cluster.Cluster, rec *cluster.Recorder, f string, v *cluster.Agent, n int, opts cluster.Options, rng *rand.Rand) error {
	hold := time.Duration(500+rng.IntN(2500)) * time.Millisecond
	var others []*lab.Host
	for _, h := range c.Lab.Nodes() {
		if h != v.Host {
			others = append(others, h)
		}
	}
	switch f {
	case "kill9":
		if err := c.Kill(v); err != nil {
			return err
		}
		time.Sleep(hold)
		return c.Restart(ctx, v)
	case "kill9-all":
		killAll(v)
		time.Sleep(hold)
		return c.Restart(ctx, v)
	case "sigstop":
		if err := c.Signal(v, syscall.SIGSTOP); err != nil {
			return err
		}
		time.Sleep(hold)
		return c.Signal(v, syscall.SIGCONT)
	case "hostdeath":
		rec.Dead(v.Host, time.Now())
		v.Host.LinkDown()
		killAll(v)
		time.Sleep(hold)
		// The host reboots: its kernel comes back without the addresses.
		if nh, err := v.Host.Handle(); err == nil {
			if l, err := nh.LinkByName("eth0"); err == nil {
				addrs, _ := nh.AddrList(l, 0)
				for _, a := range addrs {
					if a.IP.To4() != nil && a.IP.To4()[2] == 1 {
						nh.AddrDel(l, &a)
					}
				}
			}
			nh.Close()
		}
		v.Host.LinkUp()
		rec.Revived(v.Host, time.Now())
		return c.Restart(ctx, v)
	case "isolate":
		if err := v.Host.Partition(others...); err != nil {
			return err
		}
		time.Sleep(hold)
		return v.Host.Heal()
	case "split":
		// A minority (one node of 3, two of 5) against the rest.
		minority := []*lab.Host{v.Host}
		if n >= 5 {
			minority = append(minority, others[0])
		}
		var rest []*lab.Host
		for _, h := range c.Lab.Nodes() {
			if !contains(minority, h) {
				rest = append(rest, h)
			}
		}
		for _, m := range minority {
			if err := m.Partition(rest...); err != nil {
				return err
			}
		}
		time.Sleep(hold)
		return c.Lab.ClearFaults()
	case "voter-restart":
		// Restart a voter while a graceful move is under way.
		st, err := c.Client(v).Status(ctx)
		if err == nil && len(st.Resources) > 0 {
			r := st.Resources[rng.IntN(len(st.Resources))]
			go c.CLI(ctx, v, "move", r.Name)
		}
		time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		if err := c.Kill(v); err != nil {
			return err
		}
		return c.Restart(ctx, v)
	case "loss":
		for _, h := range c.Lab.Nodes() {
			if err := h.Loss(20); err != nil {
				return err
			}
		}
		time.Sleep(hold * 3)
		return c.Lab.ClearFaults()
	}
	return fmt.Errorf("unknown fault %q", f)
}

func contains(hs []*lab.Host, h *lab.Host) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// killAll SIGKILLs every process in the agent's namespace (agent and companion).
func killAll(a *cluster.Agent) {
	out, _ := exec.Command("ip", "netns", "pids", a.Host.Name).Output()
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	if p := a.Proc(); p != nil {
		<-p.Done()
	}
}

// converge waits until every node is up and every address online on one node.
func converge(ctx context.Context, c *cluster.Cluster, nodes, vips int) error {
	var last api.Status
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i := 1; i <= nodes; i++ {
			if st, err := c.Client(c.Agent(i, cluster.Options{})).Status(ctx); err == nil {
				last = st
				break
			}
		}
		up := 0
		for _, n := range last.Nodes {
			if n.State == "up" {
				up++
			}
		}
		if up == nodes && len(cluster.Owners(last)) == vips {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("after 30 s: %d of %d addresses online (%+v)", len(cluster.Owners(last)), vips, last.Resources)
}
