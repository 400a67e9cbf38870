// Command failover is the failover benchmark of issue 4 (scripts/bench/failover): it
// runs clusterd and keepalived in the same namespace lab (three nodes and a client,
// one cluster address 198.18.1.10/16 on eth0), injects the same faults into the node
// holding the address, and measures with the same instruments: an ARP prober in the
// client every 5 ms that counts only replies from the new holder, and the overlap
// recorder (test/cluster) that watches every node's kernel and the ARP answers for two
// holders and for addresses left behind.
//
// Every run builds a fresh lab, so it starts clean and converged, and removes it at
// the end. Each run appends one JSON line to --results; the table at the end
// summarises this invocation's runs (--report prints it for a whole results file, so
// a long campaign can run in parts).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "failover:", err)
		os.Exit(1)
	}
}

// faults the benchmark knows, in the order the table lists them.
var allFaults = []string{"kill9", "kill9-all", "sigstop", "hostdeath", "partition", "move"}

// options are the command line.
type options struct {
	impls, faults, profiles []string
	holders                 []string // clusterd: leader, follower
	runs                    int
	results, report         string
	bin                     string
	keep                    bool
	runTimeout              time.Duration
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("failover", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, `Usage: scripts/bench/failover [flags]

Measures failover of clusterd and keepalived in a namespace lab (run as root).
Faults: kill9 (SIGKILL the holder's daemon only), kill9-all (SIGKILL every process
in the holder's namespace), sigstop (SIGSTOP the daemon for 5 s, then SIGCONT),
hostdeath (holder's link down and every process killed; it "reboots" at the end),
partition (holder cut from the other nodes for 5 s; the client still reaches it),
move (graceful clusterd move; clusterd only).
Profiles: default, fast (clusterd's profile key; keepalived adverts 1 s / 100 ms),
fast10 (keepalived only, 10 ms adverts).

`)
		fs.PrintDefaults()
	}
	var o options
	impls := fs.String("impl", "clusterd,keepalived", "comma-separated `IMPLS`: clusterd, keepalived")
	faults := fs.String("faults", strings.Join(allFaults, ","), "comma-separated `FAULTS`")
	profiles := fs.String("profiles", "default,fast", "comma-separated timer `PROFILES`")
	holders := fs.String("holder", "leader", "comma-separated `HOLDERS` (clusterd): leader (the address sits on the raft leader, so an election precedes its failover) and/or follower")
	fs.IntVar(&o.runs, "runs", 5, "runs per implementation, profile and fault")
	fs.StringVar(&o.results, "results", "", "append one JSON line per run to `FILE`")
	fs.StringVar(&o.report, "report", "", "print the table of results `FILE` and exit (no runs)")
	fs.StringVar(&o.bin, "bin", os.Getenv("CLUSTERD_BIN"), "clusterd `BINARY` (default $CLUSTERD_BIN)")
	fs.BoolVar(&o.keep, "keep", false, "keep each run's directory (configs, daemon logs)")
	fs.DurationVar(&o.runTimeout, "run-timeout", 2*time.Minute, "abandon a run after `DURATION`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (flags only)", fs.Args())
	}
	o.impls, o.faults, o.profiles, o.holders = split(*impls), split(*faults), split(*profiles), split(*holders)
	for _, h := range o.holders {
		if h != "leader" && h != "follower" {
			return o, fmt.Errorf("--holder %q: have leader, follower", h)
		}
	}
	if len(o.holders) == 0 {
		return o, errors.New("--holder is empty: give leader, follower or both")
	}
	for _, f := range o.faults {
		if !slices.Contains(allFaults, f) {
			return o, fmt.Errorf("unknown fault %q (have %s)", f, strings.Join(allFaults, ", "))
		}
	}
	for _, i := range o.impls {
		if i != "clusterd" && i != "keepalived" {
			return o, fmt.Errorf("unknown implementation %q (have clusterd, keepalived)", i)
		}
	}
	if o.runs < 1 {
		return o, fmt.Errorf("--runs %d: want at least 1", o.runs)
	}
	if o.report == "" && slices.Contains(o.impls, "clusterd") && o.bin == "" {
		return o, errors.New("no clusterd binary: pass --bin or set CLUSTERD_BIN (go build -o bin/clusterd ./cmd/clusterd)")
	}
	return o, nil
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	if o.report != "" {
		results, err := readResults(o.report)
		if err != nil {
			return err
		}
		return printTable(stdout, summarise(results))
	}
	if os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces): run as root")
	}
	if o.bin != "" {
		if o.bin, err = filepath.Abs(o.bin); err != nil {
			return err
		}
	}
	var results []Result
	for _, impl := range o.impls {
		for _, profile := range o.profiles {
			for _, fault := range o.faults {
				if skip := unsupported(impl, profile, fault); skip != "" {
					fmt.Fprintf(stderr, "skip %s %s %s: %s\n", impl, profile, fault, skip)
					continue
				}
				holders := o.holders
				if impl != "clusterd" {
					holders = []string{""} // keepalived has no leader
				}
				for _, holder := range holders {
					for i := 1; i <= o.runs; i++ {
						if err := ctx.Err(); err != nil {
							return err
						}
						r, err := oneRun(ctx, o, runConfig{impl: impl, profile: profile, fault: fault, holder: holder, run: i, bin: o.bin})
						if err != nil {
							return err
						}
						results = append(results, r)
						fmt.Fprintln(stderr, progress(r, o.runs))
					}
				}
			}
		}
	}
	fmt.Fprintln(stdout)
	return printTable(stdout, summarise(results))
}

// unsupported says why a combination is not run ("" if it is).
func unsupported(impl, profile, fault string) string {
	_, clusterdHas := clusterdProfiles[profile]
	_, keepalivedHas := keepalivedAdverts[profile]
	switch {
	case impl == "keepalived" && fault == "move":
		return "keepalived has no graceful move"
	case impl == "clusterd" && !clusterdHas:
		return "clusterd has no such profile (default, fast)"
	case impl == "keepalived" && !keepalivedHas:
		return "keepalived has no such profile here (default, fast, fast10)"
	}
	return ""
}

// oneRun runs once in its own directory and records the result.
func oneRun(ctx context.Context, o options, rc runConfig) (Result, error) {
	dir, err := os.MkdirTemp("", fmt.Sprintf("clusterd-bench-%s-%s-%s-%d-", rc.impl, rc.profile, rc.fault, rc.run))
	if err != nil {
		return Result{}, err
	}
	rc.dir = dir
	rctx, cancel := context.WithTimeout(ctx, o.runTimeout)
	r := runOnce(rctx, rc)
	cancel()
	if err := ctx.Err(); err != nil { // interrupted: the run is not a measurement
		os.RemoveAll(dir)
		return r, err
	}
	if o.keep || r.Error != "" {
		r.Logs = dir
	} else if err := os.RemoveAll(dir); err != nil {
		return r, err
	}
	if o.results != "" {
		if err := appendResult(o.results, r); err != nil {
			return r, err
		}
	}
	return r, nil
}

func progress(r Result, runs int) string {
	head := fmt.Sprintf("%s %s %s run %d/%d:", r.Impl, r.Profile, r.Fault, r.Run, runs)
	if r.Holder != "" {
		head = fmt.Sprintf("%s %s %s holder=%s run %d/%d:", r.Impl, r.Profile, r.Fault, r.Holder, r.Run, runs)
	}
	if r.Error != "" {
		return head + " error: " + r.Error + " (logs in " + r.Logs + ")"
	}
	outage := "no failover"
	if r.Failover {
		outage = fmt.Sprintf("outage %.0f ms (%s -> %s)", r.OutageMS, r.From, r.To)
	}
	return fmt.Sprintf("%s %s, two holders %.0f ms in kernels / %d ARP rounds, left behind %v, converged %v",
		head, outage, r.TwoHolderMS, r.DoubleRounds, r.LeftBehind, r.Converged)
}
