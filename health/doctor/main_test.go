package doctor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The test binary doubles as the processes the kernel tests need, chosen by
// $CDDOC_HELPER:
//
//	squat      binds UDP $CDDOC_ADDR in namespace $CDDOC_NS ($CDDOC_REUSE=1: with
//	           SO_REUSEADDR), says "ready" and holds it until stdin closes
//	capdrop    drops CAP_NET_RAW from its bounding set and re-executes itself as
//	caps       which prints Capabilities(this process) as JSON
func TestMain(m *testing.M) {
	switch os.Getenv("CDDOC_HELPER") {
	case "":
		os.Exit(m.Run())
	case "squat":
		exitOn(squat(os.Getenv("CDDOC_NS"), os.Getenv("CDDOC_ADDR"), os.Getenv("CDDOC_REUSE") == "1"))
	case "capdrop":
		exitOn(capDrop())
	case "caps":
		eff, err := ReadCapEff("/proc")
		if err != nil {
			exitOn(err)
		}
		exitOn(json.NewEncoder(os.Stdout).Encode(Capabilities(eff, 1024)))
	default:
		exitOn(fmt.Errorf("unknown CDDOC_HELPER %q", os.Getenv("CDDOC_HELPER")))
	}
}

func exitOn(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func squat(nsPath, addr string, reuse bool) error {
	runtime.LockOSThread() // never unlocked: this process lives in the namespace
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return err
	}
	if err := netns.Set(ns); err != nil {
		return err
	}
	var lc net.ListenConfig
	if reuse {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
			})
			return errors.Join(err, serr)
		}
	}
	conn, err := lc.ListenPacket(context.Background(), "udp4", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// capDrop drops CAP_NET_RAW from the bounding set of this thread and executes the
// test binary again from it: root's new permitted and effective sets are its
// bounding set.
func capDrop() error {
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_CAPBSET_DROP, capNetRaw, 0, 0, 0); err != nil {
		return fmt.Errorf("drop CAP_NET_RAW from the bounding set: %w", err)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(exe, []string{exe, "-test.run=^$"}, withEnv("CDDOC_HELPER=caps"))
}

// helper starts the test binary as a helper process and waits for it to print its
// first line; the process ends when the test does. exe is the binary to run: the
// test binary itself (os.Args[0]) or a copy (copyTestBinary).
func helper(t *testing.T, exe string, env ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = withEnv(env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() // by pid: the helper this test started
			<-done
		}
	})
	type result struct {
		line string
		err  error
	}
	lines := make(chan result, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadString('\n')
		lines <- result{line, err}
	}()
	select {
	case r := <-lines:
		if r.err != nil {
			t.Fatalf("helper %v (pid %d) said nothing: %v", env, cmd.Process.Pid, r.err)
		}
		return cmd, r.line
	case <-time.After(helperWait):
		t.Fatalf("helper %v (pid %d) said nothing within %v", env, cmd.Process.Pid, helperWait)
		return nil, ""
	}
}

// copyTestBinary copies the test binary to DIR/name, so that a helper started from
// it is another program than this one (doctor takes a process running its own
// executable for clusterd).
func copyTestBinary(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// helperWait bounds how long a helper may take to start: a fresh process binding
// one socket needs milliseconds, a loaded CI machine a few seconds.
const helperWait = 30 * time.Second

// withEnv is this process's environment with the CDDOC_ variables replaced by vars.
func withEnv(vars ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CDDOC_") {
			env = append(env, kv)
		}
	}
	return append(env, vars...)
}
