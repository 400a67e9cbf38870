package lab

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// runDir is where `ip netns` keeps named namespaces (iproute2's NETNS_RUN_DIR).
const runDir = "/run/netns"

// runDirLock serialises prepareRunDir between processes. It is not in runDir, where
// `ip netns list` would show it as a namespace.
const runDirLock = "/run/cdlab.lock"

// sweepWait bounds how long a sweep waits for killed processes to leave a namespace.
// SIGKILL is delivered at once; exit takes milliseconds unless a process is stuck in
// the kernel (D state), which no wait would fix.
const sweepWait = 5 * time.Second

// prepareRunDir makes runDir exist and turns it into a shared mount, as `ip netns add`
// does: unmounting a namespace then also unmounts it in the mount namespaces that
// `ip netns exec` made meanwhile, so the kernel frees the namespace at once.
//
// Test processes run in parallel: a lock file serialises this, or two of them could
// both find runDir unmounted and stack two bind mounts, hiding a namespace mounted in
// between under the top one where deleteNS cannot reach it.
func prepareRunDir() error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", runDir, err)
	}
	lock, err := os.OpenFile(runDirLock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open lock file: %w", err)
	}
	defer lock.Close() // releases the lock
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", runDirLock, err)
	}
	made := false
	for {
		err := unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			return nil
		}
		if err != unix.EINVAL || made {
			return fmt.Errorf("make %s a shared mount (mount --make-rshared %s): %w", runDir, runDir, err)
		}
		// EINVAL: not a mount point yet. Bind it onto itself and retry once.
		if err := unix.Mount(runDir, runDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind-mount %s onto itself: %w", runDir, err)
		}
		made = true
	}
}

// createNS creates a network namespace bound at /run/netns/NAME, like `ip netns add
// NAME`, and returns an open handle to it. The calling goroutine's thread enters the
// new namespace only for the bind mount and is moved back before it is unlocked; if
// it cannot be moved back it stays locked, so the runtime discards it with the
// goroutine.
func createNS(name string) (netns.NsHandle, error) {
	path := filepath.Join(runDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return netns.None(), fmt.Errorf("create namespace file: %w", err)
	}
	f.Close()
	if err := unshareAndBind(path); err != nil {
		os.Remove(path)
		return netns.None(), err
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return netns.None(), errors.Join(fmt.Errorf("open %s: %w", path, err), deleteNS(name))
	}
	return ns, nil
}

// unshareAndBind moves the calling thread into a new network namespace, bind-mounts
// that namespace on path and moves the thread back.
func unshareAndBind(path string) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current network namespace: %w", err)
	}
	defer orig.Close()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("unshare network namespace: %w", err)
	}
	mountErr := unix.Mount("/proc/thread-self/ns/net", path, "none", unix.MS_BIND, "")
	if err := netns.Set(orig); err != nil {
		return fmt.Errorf("return to the original network namespace: %w", err) // thread stays locked
	}
	runtime.UnlockOSThread()
	if mountErr != nil {
		return fmt.Errorf("bind-mount namespace to %s: %w", path, mountErr)
	}
	return nil
}

// deleteNS removes the name of a namespace, like `ip netns delete NAME`. The kernel
// frees the namespace, and the interfaces in it, once no process and no open file
// refers to it any more. A name that is already gone is not an error.
func deleteNS(name string) error {
	path := filepath.Join(runDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return fmt.Errorf("unmount namespace %s: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove namespace %s: %w", name, err)
	}
	return nil
}

// nsPids lists the processes whose network namespace is the named one, like `ip netns
// pids NAME`: it compares /proc/PID/ns/net with the namespace file. The calling
// process is never listed. Exited but unreaped processes (zombies) have no namespace
// any more and are not listed.
func nsPids(name string) ([]int, error) {
	var want unix.Stat_t
	if err := unix.Stat(filepath.Join(runDir, name), &want); err != nil {
		if err == unix.ENOENT {
			return nil, nil
		}
		return nil, fmt.Errorf("stat namespace %s: %w", name, err)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		var st unix.Stat_t
		if unix.Stat("/proc/"+e.Name()+"/ns/net", &st) != nil {
			continue // exited meanwhile, or a zombie
		}
		if st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// sweep kills (SIGKILL) every process in the named namespace and waits until none is
// left, so that deleting the name frees the namespace.
func sweep(name string) error {
	deadline := time.Now().Add(sweepWait)
	for {
		pids, err := nsPids(name)
		if err != nil {
			return err
		}
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v still in namespace %s %v after SIGKILL (stuck in the kernel? see /proc/PID/stack)", pids, name, sweepWait)
		}
		for _, pid := range pids {
			unix.Kill(pid, unix.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether a process with this pid exists (EPERM: it exists but belongs
// to someone else).
func alive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || err == unix.EPERM
}
