package lab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is one namespace of a lab. The exported fields are fixed at creation.
type Host struct {
	Name  string           // namespace name, for `ip netns exec NAME` and `ip -n NAME`
	Link  string           // "eth0" (the switch: "br0")
	Addr  netip.Prefix     // IPv4 address on Link, in LAN (invalid for the switch)
	Addr6 netip.Prefix     // IPv6 address on Link, in LAN6 (invalid for the switch)
	MAC   net.HardwareAddr // Link's MAC address (nil for the switch)

	lab  *Lab
	port string         // the veth end in the switch, named after the role ("n1", "client")
	ns   netns.NsHandle // open while the lab lives
}

// String returns the namespace name.
func (h *Host) String() string { return h.Name }

// Command returns a command that runs name inside the namespace via `ip netns exec`,
// which execs it: the process's pid is that of name itself, and it also sees the
// namespace's own /sys. Processes that outlive the test are killed when the lab
// closes.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", h.execArgs(name, args)...)
}

// execArgs returns the arguments of `ip` that run name in the namespace.
func (h *Host) execArgs(name string, args []string) []string {
	return append([]string{"netns", "exec", h.Name, name}, args...)
}

// Run runs name inside the namespace and returns its combined output. The error names
// the command and the namespace and includes the output.
func (h *Host) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	out, err := h.Command(ctx, name, args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s in %s: %w: %s", strings.Join(append([]string{name}, args...), " "), h.Name,
			err, strings.TrimSpace(string(out)))
	}
	return out, nil
}

// Handle returns a netlink handle whose requests act inside the namespace (`ip -n
// NAME ...`). The caller closes it.
func (h *Host) Handle() (*netlink.Handle, error) {
	nh, err := netlink.NewHandleAt(h.ns)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle in %s: %w", h.Name, err)
	}
	return nh, nil
}

// Do runs fn with the calling goroutine locked to an OS thread that sits in the
// namespace, and moves the thread back afterwards. Sockets opened in fn stay in the
// namespace after Do returns; goroutines started in fn run elsewhere. If the thread
// cannot be moved back it is left locked, so the runtime discards it with the
// goroutine instead of reusing a thread in the wrong namespace.
func (h *Host) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	if err := netns.Set(h.ns); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("enter namespace %s: %w", h.Name, err)
	}
	defer func() {
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// Sysctl sets a kernel parameter of the namespace, like `ip netns exec NAME sysctl
// KEY=VALUE`. key is a path under /proc/sys ("net/ipv4/conf/eth0/promote_secondaries")
// or, if it has no slash, the dotted form ("net.ipv4.ip_forward").
func (h *Host) Sysctl(key, value string) error {
	if !strings.Contains(key, "/") {
		key = strings.ReplaceAll(key, ".", "/")
	}
	path := filepath.Join("/proc/sys", key)
	return h.Do(func() error {
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			return fmt.Errorf("set %s=%s in %s: %w", key, value, h.Name, err)
		}
		return nil
	})
}

// waitCarrier polls until Link is running (both veth ends up), so that the first
// packet a test sends is not lost.
func (h *Host) waitCarrier(limit time.Duration) error {
	nh, err := h.Handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	deadline := time.Now().Add(limit)
	for {
		l, err := nh.LinkByName(h.Link)
		if err != nil {
			return fmt.Errorf("find %s in %s: %w", h.Link, h.Name, err)
		}
		if l.Attrs().RawFlags&unix.IFF_RUNNING != 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s in %s has no carrier after %v", h.Link, h.Name, limit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
