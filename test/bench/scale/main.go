// Command scale is clusterd's scale benchmark (issue 7, scripts/bench/scale): real
// agents in the namespace lab (test/lab, test/cluster), every figure timed from the
// command that starts the work, printed as a table and appended to a results file as
// JSON lines.
//
// Cases:
//   - single: one node, 1,000 addresses on eth0 — apply to all online (kernel and
//     `clusterd status`), mass ARP reachability from the client, RSS and idle CPU
//     with them held, `apply --prune` of an empty file to all gone;
//   - single-netbios: the same with a NetBIOS name per address registered with
//     Samba's nmbd as WINS, and every release counted on the wire;
//   - cluster: 5 nodes, 10,000 addresses (2,000 per node) — apply to converged,
//     leader and node CPU for lease renewals while idle, kill -9 + link down of a
//     node holding 2,000 until every one answers ARP from a survivor, the
//     announcement rate on the bridge during that failover against the
//     per-interface limit, raft snapshot size and the restart (restore) time;
//   - placement: `go test -bench Place10k ./consensus/` and the moves when an eighth
//     node joins 10,000 resources on 7 (pure, no lab);
//   - limits: what grows with the resource count, on the data model alone: the
//     claims one lease datagram holds, State.Clone, lease deadlines, status JSON.
//
// --quick shrinks the sizes (100 addresses, 5×100) and the idle windows for
// development. Every lab is removed at the end of its case, also on failure.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == wakeFloorArg {
		runWakeFloor()
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

// allCases in the order they run.
var allCases = []string{"single", "single-netbios", "cluster", "placement", "limits"}

// caseAliases maps the item numbers to cases.
var caseAliases = map[string][]string{
	"1": {"single", "single-netbios"},
	"2": {"cluster"},
	"3": {"cluster"},
	"4": {"placement", "limits"},
}

// options are the command line.
type options struct {
	cases        []string
	quick        bool
	bin          string
	results      string
	report       string
	dir          string
	keep         bool
	perf         bool          // record CPU profiles of the agents with perf
	leaseCapture bool          // capture the lease protocol (UDP raft port + 1) on the bridge
	single       int           // addresses of the one-node cases
	nodes        int           // nodes of the cluster case
	perNode      int           // addresses per node of the cluster case
	idle         time.Duration // CPU sampling window
	snapshotWait time.Duration // how long to wait for raft's snapshot timer
	caseTimeout  time.Duration
	realtime     int    // realtime_priority for the agents; -1 = the agent's default
	profile      string // the agents' timer profile
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: scripts/bench/scale [--quick] [--only CASES] [flags]\n\nCases: %s (or the issue's items 1-4).\n\n", strings.Join(allCases, ", "))
		fs.PrintDefaults()
	}
	var o options
	only := fs.String("only", "", "comma-separated `CASES` to run (default all)")
	fs.BoolVar(&o.quick, "quick", false, "small sizes and short windows, for development")
	fs.StringVar(&o.bin, "bin", os.Getenv("CLUSTERD_BIN"), "clusterd `BINARY` (default $CLUSTERD_BIN)")
	fs.StringVar(&o.results, "results", "", "append one JSON line per figure to `FILE`")
	fs.StringVar(&o.report, "report", "", "print the table of the last run in results `FILE` and exit")
	fs.StringVar(&o.dir, "dir", "", "work `DIR` for configs, data dirs and logs (default a new temp dir)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (agent logs, captures)")
	fs.BoolVar(&o.leaseCapture, "lease-capture", false, "capture the lease datagrams (UDP 7402) on the bridge during the cluster case (implies --keep)")
	fs.BoolVar(&o.perf, "perf", false, "record CPU profiles of the agents with `perf record -g` during the measured phases (implies --keep)")
	fs.IntVar(&o.single, "single", 0, "addresses of the one-node cases (default 1000, --quick 100)")
	fs.IntVar(&o.nodes, "nodes", 5, "nodes of the cluster case")
	fs.IntVar(&o.perNode, "per-node", 0, "addresses per node of the cluster case (default 2000, --quick 100)")
	fs.StringVar(&o.profile, "profile", "default", "timer `PROFILE` of the agents: default, fast or relaxed (800 ms leases renewed every 80 ms, for thousands of addresses per node on busy hosts)")
	fs.IntVar(&o.realtime, "realtime-priority", -1, "realtime_priority of the agents (0 = nice -10 only; default: the agent's default, SCHED_RR 1). Five real-time agents on one 2-core machine share cores that separate hosts would not: while one decodes a 10,000-resource raft entry, the others' heartbeats wait out its 100 ms RR time slice")
	fs.DurationVar(&o.idle, "idle", 0, "CPU sampling window (default 30s, --quick 5s)")
	fs.DurationVar(&o.snapshotWait, "snapshot-wait", -1, "wait this long for a raft snapshot (default 260s: raft checks every 120-240 s; --quick 0 = skip)")
	fs.DurationVar(&o.caseTimeout, "case-timeout", 15*time.Minute, "abandon a case after `DURATION`")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (flags only)", fs.Args())
	}
	cases, err := selectCases(*only)
	if err != nil {
		return o, err
	}
	o.cases = cases
	o.keep = o.keep || o.perf || o.leaseCapture
	o.fillDefaults()
	if o.nodes < 3 || o.nodes > 20 {
		return o, fmt.Errorf("--nodes %d: want 3 to 20 (a failover needs survivors with a majority)", o.nodes)
	}
	if o.report == "" && o.needsLab() && o.bin == "" {
		return o, errors.New("no clusterd binary: pass --bin or set CLUSTERD_BIN (go build -o bin/clusterd ./cmd/clusterd)")
	}
	return o, nil
}

func (o *options) fillDefaults() {
	pick := func(v *int, full, quick int) {
		if *v <= 0 {
			*v = full
			if o.quick {
				*v = quick
			}
		}
	}
	pick(&o.single, 1000, 100)
	pick(&o.perNode, 2000, 100)
	if o.idle <= 0 {
		o.idle = 30 * time.Second
		if o.quick {
			o.idle = 5 * time.Second
		}
	}
	if o.snapshotWait < 0 {
		o.snapshotWait = 260 * time.Second
		if o.quick {
			o.snapshotWait = 0
		}
	}
}

// selectCases expands --only ("" = all), keeping the run order and dropping repeats.
func selectCases(only string) ([]string, error) {
	if strings.TrimSpace(only) == "" {
		return allCases, nil
	}
	want := map[string]bool{}
	for _, c := range strings.Split(only, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
		case caseAliases[c] != nil:
			for _, x := range caseAliases[c] {
				want[x] = true
			}
		case slices.Contains(allCases, c):
			want[c] = true
		default:
			return nil, fmt.Errorf("unknown case %q (have %s, or 1-4)", c, strings.Join(allCases, ", "))
		}
	}
	var out []string
	for _, c := range allCases {
		if want[c] {
			out = append(out, c)
		}
	}
	return out, nil
}

func (o options) needsLab() bool {
	return slices.ContainsFunc(o.cases, func(c string) bool { return c != "placement" && c != "limits" })
}

// env is what every case gets.
type env struct {
	o   options
	rep *report
	dir string // this run's work directory
	log io.Writer
	lag *lagProbe
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
		figs, err := readFigures(o.report, "")
		if err != nil {
			return err
		}
		return printTable(stdout, figs)
	}
	if o.needsLab() && os.Geteuid() != 0 {
		return errors.New("the lab needs root (network namespaces): run as root")
	}
	if o.bin != "" {
		if o.bin, err = filepath.Abs(o.bin); err != nil {
			return err
		}
	}
	e := &env{o: o, log: stderr, lag: newLagProbe(ctx), rep: &report{run: time.Now().UTC().Format("20060102T150405Z"), results: o.results, log: stderr}}
	e.rep.binary = describeBinary(o.bin)
	if e.dir, err = workDir(o.dir); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "scale benchmark %s: cases %v, work dir %s, binary %s\n", e.rep.run, o.cases, e.dir, e.rep.binary)
	var errs []error
	for _, c := range o.cases {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := e.runCase(ctx, c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c, err))
			fmt.Fprintf(stderr, "case %s failed: %v\n", c, err)
		}
	}
	fmt.Fprintln(stdout)
	if err := printTable(stdout, e.rep.figures()); err != nil {
		return err
	}
	if o.keep || len(errs) > 0 || e.rep.anyFailed() {
		fmt.Fprintf(stderr, "work directory kept: %s\n", e.dir)
	} else {
		os.RemoveAll(e.dir)
	}
	return errors.Join(errs...)
}

func workDir(dir string) (string, error) {
	if dir == "" {
		return os.MkdirTemp("", "clusterd-scale-")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

// runCase runs one case in its own subdirectory under the case timeout.
func (e *env) runCase(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, e.o.caseTimeout)
	defer cancel()
	dir := filepath.Join(e.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(e.log, "== %s (load average %.1f)\n", name, loadavg())
	e.lag.take()
	switch name {
	case "single":
		return e.single(ctx, dir, false)
	case "single-netbios":
		return e.single(ctx, dir, true)
	case "cluster":
		return e.cluster(ctx, dir)
	case "placement":
		return e.placement(ctx)
	case "limits":
		e.limits()
		return nil
	}
	return fmt.Errorf("unknown case %q", name)
}

// fig records a figure of the case.
func (e *env) fig(c, name string, v float64, unit string, max float64, cmd, note string) {
	e.rep.add(Figure{Case: c, Name: name, Value: v, Unit: unit, Max: max, Command: cmd, Note: note})
}

// failed records a figure that could not be measured.
func (e *env) failed(c, name, unit string, max float64, cmd string, err error) {
	e.rep.add(Figure{Case: c, Name: name, Unit: unit, Max: max, Command: cmd, Error: err.Error()})
}

// describeBinary names the binary measured: sha256 prefix, build time, and the
// checkout's HEAD (git rev-parse) with a mark if the tree has uncommitted changes.
func describeBinary(bin string) string {
	var parts []string
	if b, err := os.ReadFile(bin); err == nil && bin != "" {
		sum := sha256.Sum256(b)
		parts = append(parts, "sha256:"+hex.EncodeToString(sum[:4]))
		if fi, err := os.Stat(bin); err == nil {
			parts = append(parts, "built "+fi.ModTime().UTC().Format("2006-01-02T15:04:05Z"))
		}
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		head := "HEAD " + strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
			head += "+uncommitted"
		}
		parts = append(parts, head)
	}
	return strings.Join(parts, ", ")
}
