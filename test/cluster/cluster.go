// Package cluster runs real clusterd agents inside a namespace lab (package
// test/lab) for end-to-end tests, benchmarks and the demo: it writes each node's
// config, starts and kills agents, calls the API from inside the namespaces, and runs
// the CLI there.
package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/lab"
)

// Ports every agent uses on its node's lab address.
const (
	APIPort  = 7400
	RaftPort = 7401
)

// Cluster is a set of agents in a lab.
type Cluster struct {
	Lab *lab.Lab
	Bin string // the clusterd binary
	Dir string // configs and data dirs

	mu     sync.Mutex // guards agents and token
	agents map[string]*Agent
	token  string // the cluster token, read from the bootstrap node's data dir

	// TLS, if set, is how the harness reaches https APIs (the agents' TOML carries
	// their own tls_* keys through Options.Extra).
	TLS *tls.Config
	// CAFile is passed to the CLI as --tls-ca when set.
	CAFile string
}

// Agent is one node's agent.
type Agent struct {
	ID      string
	Host    *lab.Host
	DataDir string
	Config  string // path of its TOML config
	Profile string
	scheme  string // "http://" or "https://"

	mu   sync.Mutex // guards proc
	proc *lab.Proc
}

// APIAddr is the node's API host:port.
func (a *Agent) APIAddr() string {
	return fmt.Sprintf("%s:%d", a.Host.Addr.Addr(), APIPort)
}

// URL is the node's API base URL.
func (a *Agent) URL() string { return a.scheme + a.APIAddr() }

// Proc is the running agent process (nil when stopped).
func (a *Agent) Proc() *lab.Proc {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.proc
}

// New prepares a cluster over the lab's nodes; it starts nothing. dir holds configs and
// data dirs (a test's t.TempDir()).
func New(l *lab.Lab, bin, dir string) *Cluster {
	return &Cluster{Lab: l, Bin: bin, Dir: dir, agents: make(map[string]*Agent)}
}

// Binary finds the clusterd binary: $CLUSTERD_BIN, or builds one into dir.
func Binary(dir string) (string, error) {
	if b := os.Getenv("CLUSTERD_BIN"); b != "" {
		return b, nil
	}
	out := filepath.Join(dir, "clusterd")
	cmd := exec.Command("go", "build", "-o", out, "github.com/clusterd/clusterd/cmd/clusterd")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build clusterd: %v: %s", err, b)
	}
	return out, nil
}

// Options for an agent's config.
type Options struct {
	Profile string // timer profile; "" = default
	Member  bool   // join as a non-voter
	Extra   string // extra TOML lines
}

// Agent returns the agent of node i (1-based), creating its config on first use.
func (c *Cluster) Agent(i int, opts Options) *Agent {
	h := c.Lab.Node(i)
	id := fmt.Sprintf("n%d", i)
	c.mu.Lock()
	defer c.mu.Unlock()
	if a, ok := c.agents[id]; ok {
		return a
	}
	a := &Agent{ID: id, Host: h, DataDir: filepath.Join(c.Dir, id, "data"), Config: filepath.Join(c.Dir, id, "clusterd.toml"), Profile: opts.Profile, scheme: "http://"}
	if c.TLS != nil {
		a.scheme = "https://"
	}
	c.agents[id] = a
	return a
}

// writeConfig writes the agent's TOML config. join is "" for the bootstrap node.
func (c *Cluster) writeConfig(a *Agent, join string, opts Options) error {
	if err := os.MkdirAll(filepath.Dir(a.Config), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "node_id = %q\ndata_dir = %q\nraft_addr = \"%s:%d\"\napi_addr = %q\nlog_level = \"debug\"\n",
		a.ID, a.DataDir, a.Host.Addr.Addr(), RaftPort, a.APIAddr())
	if join == "" {
		b.WriteString("bootstrap = true\n")
	} else {
		fmt.Fprintf(&b, "join = %q\n", join)
		if tok := c.Token(); tok != "" && !strings.Contains(opts.Extra, "token") {
			fmt.Fprintf(&b, "token = %q\n", tok)
		}
	}
	if opts.Profile != "" {
		fmt.Fprintf(&b, "profile = %q\n", opts.Profile)
	}
	if opts.Member {
		b.WriteString("voter = false\n")
	}
	b.WriteString(opts.Extra)
	return os.WriteFile(a.Config, []byte(b.String()), 0o644)
}

// Start writes node i's config (bootstrapping when join is "") and starts its agent,
// then waits until its API answers.
func (c *Cluster) Start(ctx context.Context, i int, join string, opts Options) (*Agent, error) {
	a := c.Agent(i, opts)
	if err := c.writeConfig(a, join, opts); err != nil {
		return nil, err
	}
	return a, c.Restart(ctx, a)
}

// Restart starts a's agent again from its existing config and data dir.
func (c *Cluster) Restart(ctx context.Context, a *Agent) error {
	p, err := a.Host.Start(c.Bin, "agent", "--config", a.Config)
	if err != nil {
		return err
	}
	a.mu.Lock()
	a.proc = p
	a.mu.Unlock()
	if err := c.WaitAPI(ctx, a, 20*time.Second); err != nil {
		return err
	}
	if c.Token() == "" {
		if b, err := os.ReadFile(filepath.Join(a.DataDir, "token")); err == nil {
			c.mu.Lock()
			c.token = strings.TrimSpace(string(b))
			c.mu.Unlock()
		}
	}
	return nil
}

// Token is the cluster token (empty until the first agent started).
func (c *Cluster) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// WaitAPI polls until a's /readyz answers (any status) or the limit passes.
func (c *Cluster) WaitAPI(ctx context.Context, a *Agent, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	hc := c.HTTP(a.Host, time.Second)
	for {
		resp, err := hc.Get(a.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p := a.Proc(); p != nil {
			select {
			case <-p.Done():
				return fmt.Errorf("agent %s exited while starting: %v (log %s)", a.ID, p.Wait(), p.LogPath())
			default:
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("agent %s not ready after %s (last: %v)", a.ID, limit, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Bootstrap starts n agents: node 1 bootstraps, the others join through it.
func (c *Cluster) Bootstrap(ctx context.Context, n int, opts Options) error {
	first, err := c.Start(ctx, 1, "", opts)
	if err != nil {
		return err
	}
	for i := 2; i <= n; i++ {
		if _, err := c.Start(ctx, i, first.URL(), opts); err != nil {
			return err
		}
	}
	return nil
}

// Kill sends SIGKILL to a's agent (kill -9) and waits for it to die.
func (c *Cluster) Kill(a *Agent) error {
	return c.Signal(a, syscall.SIGKILL)
}

// Signal sends sig to the agent process only (not its group: the fencing companion
// must survive a kill of the agent).
func (c *Cluster) Signal(a *Agent, sig syscall.Signal) error {
	p := a.Proc()
	if p == nil {
		return fmt.Errorf("agent %s is not running", a.ID)
	}
	if err := syscall.Kill(p.Pid(), sig); err != nil {
		return fmt.Errorf("signal %v to %s: %w", sig, p, err)
	}
	if sig == syscall.SIGKILL || sig == syscall.SIGTERM {
		select {
		case <-p.Done():
		case <-time.After(10 * time.Second):
			return fmt.Errorf("%s did not exit after %v", p, sig)
		}
		a.mu.Lock()
		a.proc = nil
		a.mu.Unlock()
	}
	return nil
}

// HTTP returns a client whose connections are opened inside h's namespace.
func (c *Cluster) HTTP(h *lab.Host, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var conn net.Conn
		err := h.Do(func() error {
			var err error
			conn, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			return err
		})
		return conn, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true, TLSClientConfig: c.TLS}}
}

// Client returns an API client for a's API, dialing from a's namespace.
func (c *Cluster) Client(a *Agent) *api.Client {
	cl := api.NewClient(a.URL())
	cl.HTTP = c.HTTP(a.Host, 10*time.Second)
	cl.Token = c.Token()
	return cl
}

// CLI runs the clusterd CLI inside a's namespace against a's API and returns its
// combined output.
func (c *Cluster) CLI(ctx context.Context, a *Agent, args ...string) (string, error) {
	full := append([]string{"--api", a.URL()}, args...)
	if c.CAFile != "" {
		full = append([]string{"--tls-ca", c.CAFile}, full...)
	}
	cmd := a.Host.Command(ctx, c.Bin, full...)
	cmd.Env = append(os.Environ(), "CLUSTERD_TOKEN="+c.Token())
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), fmt.Errorf("clusterd %s: exit %d: %s", strings.Join(args, " "), ee.ExitCode(), strings.TrimSpace(string(out)))
		}
		return string(out), err
	}
	return string(out), nil
}

// WaitStatus polls a's status until ok says so or the limit passes; it returns the
// last status seen.
func (c *Cluster) WaitStatus(ctx context.Context, a *Agent, limit time.Duration, ok func(api.Status) bool) (api.Status, error) {
	deadline := time.Now().Add(limit)
	cl := c.Client(a)
	cl.HTTP.Timeout = 2 * time.Second
	var last api.Status
	var lastErr error
	for {
		st, err := cl.Status(ctx)
		if err == nil {
			last = st
			if ok(st) {
				return st, nil
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			return last, fmt.Errorf("condition not reached within %s (last error %v)", limit, lastErr)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Owners maps resource name to owner, for online resources.
func Owners(st api.Status) map[string]string {
	out := map[string]string{}
	for _, r := range st.Resources {
		if r.State == api.StateOnline {
			out[r.Name] = r.Owner
		}
	}
	return out
}
