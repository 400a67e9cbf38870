package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/clusterd/clusterd/test/lab"
)

// init locks the main goroutine to the main thread, which Go never ends, so that
// tests run on threads that can end: TestStartSurvivesThreadExits needs that to fail
// when it should.
func init() { runtime.LockOSThread() }

// ping sends one echo request from h to addr and waits up to wait for the reply.
func ping(h *lab.Host, addr netip.Addr, wait string) error {
	_, err := h.Run(context.Background(), "ping", "-n", "-c", "1", "-W", wait, addr.String())
	return err
}

// reach fails the test unless from can ping to over IPv4 and IPv6.
func reach(t *testing.T, from, to *lab.Host) {
	t.Helper()
	for _, a := range []netip.Addr{to.Addr.Addr(), to.Addr6.Addr()} {
		if err := ping(from, a, "2"); err != nil {
			t.Errorf("ping %s from %s: %v", a, from.Name, err)
		}
	}
}

// unreachable fails the test if from can ping to over IPv4 or IPv6.
func unreachable(t *testing.T, from, to *lab.Host) {
	t.Helper()
	for _, a := range []netip.Addr{to.Addr.Addr(), to.Addr6.Addr()} {
		if err := ping(from, a, "0.3"); err == nil {
			t.Errorf("ping %s from %s: got a reply, want none", a, from.Name)
		}
	}
}

// nsPids lists the processes in namespace name with `ip netns pids`, independently of
// the lab's own sweep code.
func nsPids(t *testing.T, name string) []int {
	t.Helper()
	out, err := exec.Command("ip", "netns", "pids", name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns pids %s: %v: %s", name, err, out)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("ip netns pids %s: bad pid %q", name, f)
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitInNS polls until pid runs in namespace name with command comm (after `ip netns
// exec` has exec'd it).
func waitInNS(t *testing.T, pid int, name, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(c)) == comm && slices.Contains(nsPids(t, name), pid) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: not running %s in %s after 5 s (comm %q)", pid, comm, name, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitComm polls until pid runs command comm.
func waitComm(t *testing.T, pid int, comm string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.TrimSpace(string(c)) == comm || strings.Contains(string(stat), ") Z ") {
			return // running comm, or exited (the checks after it tell)
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: not running %s after 5 s (comm %q)", pid, comm, c)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// namespaces lists the names in /run/netns that start with prefix.
func namespaces(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			names = append(names, e.Name())
		}
	}
	return names
}

func gone(pid int) bool { return unix.Kill(pid, 0) == unix.ESRCH }

// waitLog polls until p's log contains want.
func waitLog(t *testing.T, p *lab.Proc, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		log, _ := os.ReadFile(p.LogPath())
		if strings.Contains(string(log), want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: log has no %q after 5 s: %q", p, want, log)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func linkNames(links []netlink.Link) []string {
	var names []string
	for _, l := range links {
		names = append(names, l.Attrs().Name)
	}
	return names
}
