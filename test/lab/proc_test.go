package lab_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/test/lab"
)

func TestStartKill(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1})
	n1 := l.Node(1)
	p, err := n1.Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	waitInNS(t, p.Pid(), n1.Name, "sleep")
	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *exec.ExitError
	if err := p.Wait(); !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != unix.SIGKILL {
		t.Errorf("Wait after Kill = %v, want killed by SIGKILL", err)
	}
	if !gone(p.Pid()) {
		t.Errorf("pid %d still exists after Kill", p.Pid())
	}

	p, err = n1.Start("sh", "-c", "echo out; echo err >&2")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatalf("sh: %v", err)
	}
	log, err := os.ReadFile(p.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(log), "out\nerr\n"; got != want {
		t.Errorf("log %s = %q, want %q", p.LogPath(), got, want)
	}
}

func TestTeardownLeavesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	grace := 200 * time.Millisecond
	l, err := lab.Create(ctx, lab.Options{Nodes: 1, Client: true, WINS: true, Grace: grace})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			l.Close()
		}
	})
	tracked, err := l.Node(1).Start("sleep", "60")
	if err != nil {
		t.Fatal(err)
	}
	stubborn, err := l.WINS().Start("sh", "-c", "trap '' TERM; echo ready; sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	stray := l.Client().Command(ctx, "sleep", "60") // not tracked: the sweep must get it
	if err := stray.Start(); err != nil {
		t.Fatal(err)
	}
	waitInNS(t, tracked.Pid(), l.Node(1).Name, "sleep")
	waitInNS(t, stray.Process.Pid, l.Client().Name, "sleep")
	waitLog(t, stubborn, "ready") // SIGTERM is ignored from here on
	logDir := filepath.Dir(tracked.LogPath())
	// Hold node 1's namespace open, as a leaked socket would: Close must still cut it
	// off the LAN by deleting its veth.
	held, err := netns.GetFromPath("/run/netns/" + l.Node(1).Name)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	start := time.Now()
	err = l.Close()
	closed = true
	took := time.Since(start)
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if took < grace || took > grace+3*time.Second {
		t.Errorf("Close took %v, want the %v grace for the shell ignoring SIGTERM and little more", took, grace)
	}
	if left := namespaces(t, lab.Prefix+l.ID()+"-"); len(left) > 0 {
		t.Errorf("namespaces left after Close: %v", left)
	}
	nh, err := netlink.NewHandleAt(held)
	if err != nil {
		t.Fatal(err)
	}
	defer nh.Close()
	if links, err := nh.LinkList(); err != nil || len(links) != 1 || links[0].Attrs().Name != "lo" {
		t.Errorf("links left in a held node namespace after Close: %v, %v; want only lo", linkNames(links), err)
	}
	stray.Wait()
	for _, pid := range []int{tracked.Pid(), stubborn.Pid(), stray.Process.Pid} {
		if !gone(pid) {
			t.Errorf("pid %d still exists after Close", pid)
		}
	}
	if _, err := os.Stat(logDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("log directory %s: %v, want removed", logDir, err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

// TestStartSurvivesThreadExits checks that Pdeathsig does not kill a started process
// when the thread of the goroutine that called Start ends (a goroutine that exits
// locked to its thread ends it), as it would if Start forked from the caller's thread.
func TestStartSurvivesThreadExits(t *testing.T) {
	t.Parallel()
	l := lab.New(t, lab.Options{Nodes: 1})
	var p *lab.Proc
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		p, err = l.Node(1).Start("sleep", "60")
	}()
	<-done
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
		t.Fatalf("%v exited when the thread that called Start ended: %v", p, p.Wait())
	case <-time.After(200 * time.Millisecond):
	}
	waitInNS(t, p.Pid(), l.Node(1).Name, "sleep")
}
