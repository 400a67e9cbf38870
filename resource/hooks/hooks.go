// Package hooks runs a cluster resource's lifecycle hooks: operator executables
// started when the resource comes online on this node, before it goes offline,
// and after it failed, in the manner of keepalived's notify scripts and CTDB's
// event scripts. Each run gets the event in CLUSTERD_* environment variables, its
// own process group, a timeout that kills the whole group, and its output in the
// log.
package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Event is the lifecycle event a hook runs for (CLUSTERD_EVENT).
type Event string

// The events. Online runs after the address and its NetBIOS interface are up,
// Offline before they go, Failed after the resource failed on this node.
const (
	Online  Event = "online"
	Offline Event = "offline"
	Failed  Event = "failed"
)

// String returns the event as hooks see it.
func (e Event) String() string { return string(e) }

// Limits of a run.
const (
	// DefaultTimeout applies when Hook.Timeout is zero: CTDB's event script
	// timeout (30 s), the same default as consensus.DefaultHookTimeout.
	DefaultTimeout = 30 * time.Second
	// MaxOutput caps the bytes of a run's output that reach the log (both streams
	// together); the rest is read and dropped so the hook never blocks on a full
	// pipe. 64 KiB is hundreds of lines: enough to diagnose, too little to flood.
	MaxOutput = 64 << 10
	// MaxLine caps one logged line; longer lines are cut.
	MaxLine = 4 << 10
	// OutputGrace is how long Run keeps reading after the hook exited while
	// processes it left behind still hold its stdout or stderr; then the pipes
	// are closed (see Run). One second lets buffered output drain.
	OutputGrace = time.Second
	// defaultPath is the PATH hooks get when the agent has none.
	defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
)

// Conditions callers branch on, checked with errors.Is. A run cancelled through
// its context wraps the context's error instead.
var (
	// ErrFailed: the hook could not start, exited with a non-zero status or was
	// killed by a signal it did not get from Run.
	ErrFailed = errors.New("hook failed")
	// ErrTimeout: the hook ran past its timeout and was killed with its process group.
	ErrTimeout = errors.New("hook timed out")
)

// Hook is one executable to run.
type Hook struct {
	Path    string        // absolute path
	Timeout time.Duration // 0 = DefaultTimeout
	// Started, if set, is called with the hook's pid as soon as it started (the
	// agent returns it to normal scheduling: it inherits the agent's real-time one).
	Started func(pid int)
}

// Env is what a run is told, in its environment.
type Env struct {
	Event     Event        // CLUSTERD_EVENT
	Resource  string       // CLUSTERD_RESOURCE: the resource's name
	Address   netip.Prefix // CLUSTERD_ADDRESS (the IP alone) and CLUSTERD_PREFIX (with its length)
	Interface string       // CLUSTERD_INTERFACE
	Node      string       // CLUSTERD_NODE: this node's id
	Reason    string       // CLUSTERD_REASON: why (e.g. "failover", "drain", a failure's message)
	// A group hook's run: CLUSTERD_GROUP, and its members on this node in
	// CLUSTERD_RESOURCES and CLUSTERD_ADDRESSES (space-separated, same order). A
	// resource's own hook gets its group's name (or "") and itself in both lists.
	Group     string
	Resources []string
	Addresses []netip.Prefix
}

// environ returns the hook's whole environment: PATH and the CLUSTERD_ variables,
// nothing else of the agent's (no secrets, no NOTIFY_SOCKET, no locale surprises).
func (e Env) environ(path string) []string {
	if path == "" {
		path = defaultPath
	}
	addr := ""
	if e.Address.IsValid() {
		addr = e.Address.Addr().String()
	}
	prefix := ""
	if e.Address.IsValid() {
		prefix = e.Address.String()
	}
	return []string{
		"PATH=" + path,
		"CLUSTERD_EVENT=" + string(e.Event),
		"CLUSTERD_RESOURCE=" + e.Resource,
		"CLUSTERD_ADDRESS=" + addr,
		"CLUSTERD_PREFIX=" + prefix,
		"CLUSTERD_INTERFACE=" + e.Interface,
		"CLUSTERD_NODE=" + e.Node,
		"CLUSTERD_REASON=" + oneLine(e.Reason),
		"CLUSTERD_GROUP=" + e.Group,
		"CLUSTERD_RESOURCES=" + strings.Join(e.resources(), " "),
		"CLUSTERD_ADDRESSES=" + strings.Join(e.addresses(), " "),
	}
}

func (e Env) resources() []string {
	if len(e.Resources) == 0 && e.Resource != "" {
		return []string{e.Resource}
	}
	return e.Resources
}

func (e Env) addresses() []string {
	as := e.Addresses
	if len(as) == 0 && e.Address.IsValid() {
		as = []netip.Prefix{e.Address}
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Addr().String()
	}
	return out
}

// Result describes a finished run.
type Result struct {
	ExitCode int           // the exit status; -1 if it did not start or was killed
	Duration time.Duration // from start to exit
	TimedOut bool          // killed at the timeout
	Lines    int           // output lines logged
	// Truncated is set when output beyond MaxOutput was dropped.
	Truncated bool
	// LastLine is the last line the hook wrote on stderr, else on stdout, for messages.
	LastLine string
}

// Run runs hook with env and waits for it. The executable runs in its own
// process group, with "/" as its working directory, no stdin and only the
// environment Env describes (plus PATH). Each line of its stdout and stderr is
// logged at Info with the keys hook (the path), event, resource, stream and line,
// up to about MaxOutput bytes per run (the line that crosses the limit is the
// last one logged).
//
// At the timeout, or when ctx is done, the whole process group is killed
// (SIGKILL): the hook and everything it started that stayed in its group. A hook
// that exits normally leaves its children alone, so an online hook may start a
// service in the background; that service must not keep the hook's stdout and
// stderr (redirect them: `svc >/dev/null 2>&1 &`, or use systemd-run), or Run
// waits OutputGrace after the hook exited and then closes the pipes, and the
// service's later writes to them fail.
//
// The error names the hook, the event and resource, what happened (exit status,
// signal, "timed out after X (killed)") and the fix; it wraps ErrFailed,
// ErrTimeout or ctx's error.
func Run(ctx context.Context, hook Hook, env Env, log *slog.Logger) (Result, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := Result{ExitCode: -1}
	what := fmt.Sprintf("hook %s (%s of resource %q)", hook.Path, env.Event, env.Resource)
	if env.Resource == "" && env.Group != "" {
		what = fmt.Sprintf("hook %s (%s of group %q)", hook.Path, env.Event, env.Group)
	}
	if !filepath.IsAbs(hook.Path) {
		return res, fmt.Errorf("%s: not an absolute path (give the full path in the resource's hooks): %w", what, ErrFailed)
	}
	timeout := hook.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	log = log.With("hook", hook.Path, "event", string(env.Event), "resource", env.Resource, "group", env.Group)
	out := newCapture(log)
	cmd := exec.CommandContext(runCtx, hook.Path)
	cmd.Dir = "/"
	cmd.Env = env.environ(os.Getenv("PATH"))
	cmd.Stdout = out.writer("stdout")
	cmd.Stderr = out.writer("stderr")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The group id is the hook's pid, which stays reserved until Wait reaps
		// it, so this cannot hit a stranger's group.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = OutputGrace

	start := time.Now()
	if err := cmd.Start(); err != nil {
		return res, fmt.Errorf("%s could not start: %v (check that it exists on node %q and is executable: chmod 755): %w",
			what, err, env.Node, ErrFailed)
	}
	if hook.Started != nil {
		hook.Started(cmd.Process.Pid)
	}
	err := cmd.Wait()
	res.Duration = time.Since(start)
	out.flush()
	res.Lines, res.Truncated, res.LastLine = out.result()
	if cmd.ProcessState != nil {
		res.ExitCode = cmd.ProcessState.ExitCode()
	}
	last := ""
	if res.LastLine != "" {
		last = fmt.Sprintf("; its last line was %q", res.LastLine)
	}
	switch {
	case err == nil:
		return res, nil
	case errors.Is(err, exec.ErrWaitDelay):
		log.Warn("hook exited but processes it started still hold its output; closed it after the grace "+
			"(redirect their output: svc >/dev/null 2>&1 &)", "grace", OutputGrace)
		return res, nil
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s was killed with its process group after %v because the agent stopped waiting%s: %w",
			what, res.Duration.Round(time.Millisecond), last, ctx.Err())
	case runCtx.Err() != nil:
		res.TimedOut = true
		return res, fmt.Errorf("%s timed out after %v (killed with its process group)%s "+
			"(make it finish sooner, or raise hooks.timeout up to 10m): %w", what, timeout, last, ErrTimeout)
	default:
		return res, fmt.Errorf("%s %s after %v%s (fix the hook, or remove it from the resource's hooks): %w",
			what, exitDescription(cmd.ProcessState, err), res.Duration.Round(time.Millisecond), last, ErrFailed)
	}
}

// exitDescription says how a process ended: "exited with status 3" or "was
// killed by signal terminated".
func exitDescription(ps *os.ProcessState, err error) string {
	if ps == nil {
		return fmt.Sprintf("failed (%v)", err)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "was killed by signal " + ws.Signal().String()
	}
	return fmt.Sprintf("exited with status %d", ps.ExitCode())
}

func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\r' {
			return ' '
		}
		return r
	}, s)
}
