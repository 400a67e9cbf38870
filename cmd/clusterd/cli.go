package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/clusterd/clusterd/health/api"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// defaultAPI is the local agent's API (agent --dev listens there too).
const defaultAPI = "http://127.0.0.1:7400"

var errUnreachable = api.ErrUnreachable

// globals are the flags every subcommand takes, before or after its name.
type globals struct {
	api       string
	output    string // table or json
	token     string
	tokenFile string
	tlsCA     string // CA to verify an https API with
	tlsCert   string // client certificate (authenticates like the token)
	tlsKey    string
	stdout    io.Writer
	stderr    io.Writer
}

func (g *globals) client() *api.Client {
	c := api.NewClient(g.api)
	c.Token = g.resolveToken()
	if ca := firstNonEmpty(g.tlsCA, os.Getenv("CLUSTERD_TLS_CA")); ca != "" || g.tlsCert != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if b, err := os.ReadFile(ca); err == nil {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(b)
			cfg.RootCAs = pool
		}
		if g.tlsCert != "" {
			if cert, err := tls.LoadX509KeyPair(g.tlsCert, g.tlsKey); err == nil {
				cfg.Certificates = []tls.Certificate{cert}
			}
		}
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSClientConfig = cfg
		c.HTTP.Transport = t
	}
	return c
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// resolveToken: --token, --token-file, $CLUSTERD_TOKEN, $CLUSTERD_TOKEN_FILE, then
// ~/.clusterd-token (written by `agent --dev`).
func (g *globals) resolveToken() string {
	if g.token != "" {
		return g.token
	}
	file := g.tokenFile
	if t := os.Getenv("CLUSTERD_TOKEN"); file == "" && t != "" {
		return strings.TrimSpace(t)
	}
	if file == "" {
		file = os.Getenv("CLUSTERD_TOKEN_FILE")
	}
	if file == "" {
		if home, err := os.UserHomeDir(); err == nil {
			file = filepath.Join(home, ".clusterd-token")
		}
	}
	b, _ := os.ReadFile(file)
	return strings.TrimSpace(string(b))
}

func (g *globals) json() bool { return g.output == "json" }

func (g *globals) printf(format string, args ...any) { fmt.Fprintf(g.stdout, format, args...) }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, g *globals, args []string) error
}

func commands() []command {
	return []command{
		{"agent", "run the cluster daemon on this node", runAgent},
		{"status", "show nodes and resources", runStatus},
		{"resource", "add, remove or list resources (cluster IP addresses)", runResource},
		{"group", "set, remove or list a resource group's hooks", runGroup},
		{"nodes", "list the cluster's nodes", runNodes},
		{"move", "move a resource to another node, gracefully", runMove},
		{"drain", "move every resource off a node and keep them off", runDrain},
		{"undrain", "let a drained node hold resources again", runUndrain},
		{"apply", "create or update resources and group settings from a TOML file", runApply},
		{"rebalance", "spread resources evenly with the fewest moves", runRebalance},
		{"leave", "remove a node from the cluster", runLeave},
		{"events", "show the cluster's events (--follow to keep watching)", runEvents},
		{"maintenance", "freeze placement (on|off) for network work", runMaintenance},
		{"snapshot", "save or restore a backup of the replicated state", runSnapshot},
		{"recover", "make this node the only voter after losing a majority (agent stopped)", runRecover},
		{"completion", "print a shell completion script (bash)", runCompletion},
		{"doctor", "preflight: what will stop clusterd on this node, and the fix", runDoctor},
		{"tls", "make a cluster CA and node certificates for mutual TLS", runTLS},
		{"release", "remove this node's recorded cluster addresses (ExecStopPost)", runRelease},
		{"fence", "the agent's fencing companion (started by the agent)", runFence},
		{"version", "print the version", runVersion},
	}
}

const mainHelp = `clusterd — cluster IP addresses that fail over between Linux hosts

Usage:
  clusterd [global flags] COMMAND [flags] [args]

Commands:
%s
Global flags (before or after the command):
  --api URL          the agent's API (default $CLUSTERD_API, else %s)
  --token T          the cluster token (default $CLUSTERD_TOKEN, else ~/.clusterd-token)
  --token-file F     read the token from F (the bootstrap node's DATA_DIR/token)
  --tls-ca F         CA to verify an https:// API (default $CLUSTERD_TLS_CA)
  --tls-client-cert F, --tls-client-key F
                     a client certificate from the cluster CA (instead of the token)
  -o, --output F     output format: table (default) or json

Exit codes:
  0 success; 1 the operation failed (including 401: missing or wrong token);
  2 bad command line; 3 no API answered.

Run 'clusterd COMMAND --help' for a command's flags and examples.
`

func printMainHelp(w io.Writer) {
	var b strings.Builder
	for _, c := range commands() {
		fmt.Fprintf(&b, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, mainHelp, b.String(), defaultAPI)
}

// run is the whole program; main only exits.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g := &globals{api: os.Getenv("CLUSTERD_API"), output: "table", stdout: stdout, stderr: stderr}
	if g.api == "" {
		g.api = defaultAPI
	}
	rest, err := g.extract(args)
	if err != nil {
		return err
	}
	if len(rest) == 0 {
		printMainHelp(stderr)
		return usagef("no command given")
	}
	switch rest[0] {
	case "-h", "--help", "help":
		printMainHelp(stdout)
		return errHelp
	case "--version":
		rest[0] = "version"
	}
	for _, c := range commands() {
		if c.name == rest[0] {
			return c.run(ctx, g, rest[1:])
		}
	}
	return usagef("unknown command %q (run `clusterd --help` for the list)", rest[0])
}

// extract removes the global flags from anywhere in args.
func (g *globals) extract(args []string) ([]string, error) {
	var rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i:]...)
			break
		}
		name, val, hasVal := strings.Cut(a, "=")
		switch name {
		case "--api", "-api", "-o", "--output", "-output", "--token", "-token", "--token-file", "-token-file",
			"--tls-ca", "--tls-client-cert", "--tls-client-key":
		default:
			rest = append(rest, a)
			continue
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, usagef("flag %s needs a value", name)
			}
			i++
			val = args[i]
		}
		switch name {
		case "--api", "-api":
			if !strings.Contains(val, "://") {
				val = "http://" + val
			}
			g.api = val
		case "--token", "-token":
			g.token = val
		case "--token-file", "-token-file":
			g.tokenFile = val
		case "--tls-ca":
			g.tlsCA = val
		case "--tls-client-cert":
			g.tlsCert = val
		case "--tls-client-key":
			g.tlsKey = val
		default:
			if val != "table" && val != "json" {
				return nil, usagef("output format %q is not known (use -o table or -o json)", val)
			}
			g.output = val
		}
	}
	return rest, nil
}

// newFlags makes a subcommand's flag set with its help text.
func newFlags(g *globals, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("clusterd "+name, flag.ContinueOnError)
	fs.SetOutput(g.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "%s\nFlags:\n", strings.TrimSpace(usage))
		fs.PrintDefaults()
		fmt.Fprintf(fs.Output(), "\nGlobal flags --api URL and -o json work here too.\n")
	}
	return fs
}

// parse parses flags and positional arguments in any order.
func parse(g *globals, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				fs.SetOutput(g.stdout)
				fs.Usage()
				return nil, errHelp
			}
			return nil, usageError{err.Error()}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// listFlag collects a repeatable flag; commas split values too.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

func runVersion(_ context.Context, g *globals, args []string) error {
	fs := newFlags(g, "version", "Usage: clusterd version\n\nPrints the version of this binary.")
	if _, err := parse(g, fs, args); err != nil {
		return err
	}
	fmt.Fprintf(g.stdout, "clusterd %s\n", version)
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// rawListFlag collects a repeatable flag whose values may contain commas.
type rawListFlag []string

func (l *rawListFlag) String() string { return strings.Join(*l, " ") }

func (l *rawListFlag) Set(v string) error {
	*l = append(*l, strings.TrimSpace(v))
	return nil
}
