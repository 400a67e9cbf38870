package hooks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// record is one log record with its attributes (including With's) as strings.
type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder is a slog.Handler that keeps every record.
type recorder struct {
	mu      *sync.Mutex // guards *records
	records *[]record
	with    []slog.Attr
}

func newRecorder() *recorder { return &recorder{mu: &sync.Mutex{}, records: &[]record{}} }

func (h *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (h *recorder) WithGroup(string) slog.Handler            { return h }
func (h *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &recorder{mu: h.mu, records: h.records, with: append(slices.Clip(h.with), as...)}
}
func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.with {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.records = append(*h.records, rec)
	h.mu.Unlock()
	return nil
}

func (h *recorder) all() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.records)
}

// script writes an executable shell script and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

var testEnv = Env{Event: Online, Resource: "web", Address: netip.MustParsePrefix("192.0.2.10/24"),
	Interface: "eth0", Node: "n1", Reason: "failover\nfrom n2"}

func TestRunEnvironment(t *testing.T) {
	t.Setenv("HOOKS_TEST_SECRET", "must-not-leak")
	out := filepath.Join(t.TempDir(), "env")
	hook := script(t, fmt.Sprintf("env > %s\npwd >> %s\n", out, out))
	if _, err := Run(context.Background(), Hook{Path: hook, Timeout: 5 * time.Second}, testEnv, nil); err != nil {
		t.Fatalf("Run: %v", err)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	for _, l := range lines[:len(lines)-1] {
		k, v, _ := strings.Cut(l, "=")
		got[k] = v
	}
	want := map[string]string{
		"CLUSTERD_EVENT":     "online",
		"CLUSTERD_RESOURCE":  "web",
		"CLUSTERD_ADDRESS":   "192.0.2.10",
		"CLUSTERD_PREFIX":    "192.0.2.10/24",
		"CLUSTERD_INTERFACE": "eth0",
		"CLUSTERD_NODE":      "n1",
		"CLUSTERD_REASON":    "failover from n2",
		"CLUSTERD_GROUP":     "",
		"CLUSTERD_RESOURCES": "web",
		"CLUSTERD_ADDRESSES": "192.0.2.10",
		"PATH":               os.Getenv("PATH"),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok && k != "PWD" && k != "SHLVL" && k != "_" {
			t.Errorf("the hook saw %s=%q, which is not one of its variables", k, got[k])
		}
	}
	if pwd := lines[len(lines)-1]; pwd != "/" {
		t.Errorf("working directory: got %q, want /", pwd)
	}
}

func TestRunFailureNamesHookAndStatus(t *testing.T) {
	hook := script(t, "echo starting service\necho 'port 80 in use' >&2\nexit 3\n")
	res, err := Run(context.Background(), Hook{Path: hook, Timeout: 5 * time.Second}, testEnv, nil)
	if !errors.Is(err, ErrFailed) {
		t.Fatalf("Run: got %v, want ErrFailed", err)
	}
	for _, s := range []string{hook, "online", `"web"`, "exited with status 3", `"port 80 in use"`, "fix the hook"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if res.ExitCode != 3 || res.TimedOut || res.Lines != 2 {
		t.Errorf("result: got %+v, want exit 3, 2 lines", res)
	}
}

func TestRunCannotStart(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"missing":        filepath.Join(dir, "missing"),
		"not executable": notExec,
		"relative":       "hook.sh",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Run(context.Background(), Hook{Path: path, Timeout: time.Second}, testEnv, nil)
			if !errors.Is(err, ErrFailed) || !strings.Contains(err.Error(), path) {
				t.Errorf("got %v, want ErrFailed naming %s", err, path)
			}
		})
	}
}

// pidFile reads a pid a script wrote and makes sure the process is gone when the
// test ends, whatever happened.
func pidFile(t *testing.T, path string) int {
	t.Helper()
	var pid int
	deadline := time.Now().Add(5 * time.Second)
	for {
		data, err := os.ReadFile(path)
		if err == nil && strings.HasSuffix(string(data), "\n") {
			pid, err = strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatalf("pid file %s: %q", path, data)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s after 5s", path)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() {
		if alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return pid
}

// alive reports whether pid runs (a zombie waiting for its reaper does not).
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := strings.LastIndexByte(string(data), ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}

func TestRunKillsHangingHookAndItsChildren(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "child.pid")
	hook := script(t, fmt.Sprintf("sleep 60 &\necho $! > %s\necho waiting\nsleep 60\n", pids))
	start := time.Now()
	res, err := Run(context.Background(), Hook{Path: hook, Timeout: 200 * time.Millisecond}, testEnv, nil)
	took := time.Since(start)
	child := pidFile(t, pids)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("Run: got %v, want ErrTimeout", err)
	}
	for _, s := range []string{hook, "timed out after 200ms (killed with its process group)", `"waiting"`, "hooks.timeout"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
	if !res.TimedOut || res.ExitCode != -1 {
		t.Errorf("result: got %+v, want timed out, exit -1", res)
	}
	if took < 200*time.Millisecond || took > 2*time.Second {
		t.Errorf("Run returned after %v, want soon after the 200ms timeout", took)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d still runs 5s after the timeout", child)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("hook with a 200ms timeout returned after %v", took)
}

func TestRunCancelledContextKills(t *testing.T) {
	hook := script(t, "sleep 60\n")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err := Run(ctx, Hook{Path: hook, Timeout: time.Minute}, testEnv, nil)
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrTimeout) {
		t.Errorf("Run: got %v, want context.Canceled", err)
	}
}

func TestRunLogsOutput(t *testing.T) {
	rec := newRecorder()
	hook := script(t, "echo one\necho two >&2\nprintf 'no newline'\n")
	res, err := Run(context.Background(), Hook{Path: hook, Timeout: 5 * time.Second}, testEnv, slog.New(rec))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rec.all() {
		if r.msg != "hook output" {
			continue
		}
		if r.attrs["hook"] != hook || r.attrs["event"] != "online" || r.attrs["resource"] != "web" {
			t.Errorf("record without hook, event and resource keys: %+v", r.attrs)
		}
		got[r.attrs["line"]] = r.attrs["stream"]
	}
	want := map[string]string{"one": "stdout", "two": "stderr", "no newline": "stdout"}
	if !maps.Equal(got, want) {
		t.Errorf("logged lines: got %v, want %v", got, want)
	}
	if res.Lines != 3 || res.LastLine != "two" || res.Truncated { // the last stderr line wins
		t.Errorf("result: got %+v", res)
	}
}

func TestRunCapsOutput(t *testing.T) {
	rec := newRecorder()
	// ~590 KB of output, and one 10 KB line first.
	hook := script(t, "head -c 10000 /dev/zero | tr '\\0' x; echo\nseq 1 100000\n")
	res, err := Run(context.Background(), Hook{Path: hook, Timeout: 10 * time.Second}, testEnv, slog.New(rec))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	logged, warned := 0, false
	for _, r := range rec.all() {
		switch r.msg {
		case "hook output":
			logged += len(r.attrs["line"]) + 1
			if len(r.attrs["line"]) > MaxLine {
				t.Errorf("a logged line has %d bytes, want at most %d", len(r.attrs["line"]), MaxLine)
			}
		default:
			warned = warned || strings.Contains(r.msg, "over the limit")
		}
	}
	if logged > MaxOutput+MaxLine || logged < MaxOutput/2 || !res.Truncated || !warned {
		t.Errorf("logged %d bytes (limit %d), truncated %v, warned %v", logged, MaxOutput, res.Truncated, warned)
	}
	if res.ExitCode != 0 {
		t.Errorf("exit code %d, want 0: the hook must not block or fail on the cap", res.ExitCode)
	}
}

// An online hook may leave a service running; if the service keeps the hook's
// output open, Run returns after OutputGrace, and the service keeps running.
func TestRunLeavesBackgroundServiceRunning(t *testing.T) {
	for _, tc := range []struct {
		name     string
		redirect string
		min, max time.Duration
	}{
		{"output redirected", ">/dev/null 2>&1", 0, OutputGrace / 2},
		{"output kept", "", OutputGrace, OutputGrace + 2*time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pids := filepath.Join(t.TempDir(), "svc.pid")
			hook := script(t, fmt.Sprintf("sleep 60 %s &\necho $! > %s\n", tc.redirect, pids))
			start := time.Now()
			_, err := Run(context.Background(), Hook{Path: hook, Timeout: 10 * time.Second}, testEnv, nil)
			took := time.Since(start)
			svc := pidFile(t, pids)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("Run returned after %v, want %v to %v", took, tc.min, tc.max)
			}
			if !alive(svc) {
				t.Errorf("the service the hook started (pid %d) was killed", svc)
			}
		})
	}
}

func TestGroupEnviron(t *testing.T) {
	e := Env{Event: Offline, Group: "web", Node: "n2", Reason: "moving",
		Resources: []string{"web-a", "web-b"}, Addresses: []netip.Prefix{netip.MustParsePrefix("192.0.2.10/24"), netip.MustParsePrefix("2001:db8::10/64")}}
	got := map[string]string{}
	for _, kv := range e.environ("/bin") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	for k, want := range map[string]string{
		"CLUSTERD_EVENT": "offline", "CLUSTERD_GROUP": "web", "CLUSTERD_RESOURCE": "", "CLUSTERD_ADDRESS": "",
		"CLUSTERD_RESOURCES": "web-a web-b", "CLUSTERD_ADDRESSES": "192.0.2.10 2001:db8::10", "CLUSTERD_NODE": "n2",
	} {
		if got[k] != want {
			t.Errorf("group hook env %s: got %q, want %q", k, got[k], want)
		}
	}
}
