package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

//go:embed keepalived/keepalived.conf.tmpl
var keepalivedTemplate string

var keepalivedConf = template.Must(template.New("keepalived.conf").Parse(keepalivedTemplate))

// keepalivedAdverts are the advert intervals of keepalived's profiles: its default of
// one second, and the aggressive settings issue 4 compares against (100 ms and 10 ms;
// VRRPv3 counts in centiseconds, so 10 ms is the shortest there is).
var keepalivedAdverts = map[string]time.Duration{
	"default": time.Second,
	"fast":    100 * time.Millisecond,
	"fast10":  10 * time.Millisecond,
}

// keepalivedConfig is what the template needs for one node.
type keepalivedConfig struct {
	Node, Profile string
	Advert        time.Duration
	AdvertInt     string // seconds, as keepalived's advert_int takes them
	VRRPVersion   int    // 2 for whole seconds (keepalived's default), 3 below a second
	Priority      int
	Self          netip.Addr
	Peers         []netip.Addr
	VIP           netip.Prefix
}

// renderKeepalived writes node i's (1-based) config of n nodes. Priorities fall with
// the node number (n1 150, n2 100, n3 50), so n1 becomes master first and the
// survivor with the highest priority takes over.
func renderKeepalived(profile string, i int, nodes []netip.Addr, vip netip.Prefix) (string, error) {
	advert, ok := keepalivedAdverts[profile]
	if !ok {
		return "", fmt.Errorf("keepalived has no profile %q (have default, fast, fast10)", profile)
	}
	c := keepalivedConfig{
		Node: fmt.Sprintf("n%d", i), Profile: profile, Advert: advert,
		AdvertInt:   strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", advert.Seconds()), "0"), "."),
		VRRPVersion: 2, Priority: 200 - 50*i, Self: nodes[i-1], VIP: vip,
	}
	if advert < time.Second {
		c.VRRPVersion = 3
	}
	for j, a := range nodes {
		if j != i-1 {
			c.Peers = append(c.Peers, a)
		}
	}
	var b strings.Builder
	err := keepalivedConf.Execute(&b, c)
	return b.String(), err
}

// keepalivedSystem runs Debian's keepalived in every node namespace: VRRP only
// (--vrrp), in the foreground, logging to its lab log, with pid files in the run's
// directory so that nothing outside the namespace and the directory is touched.
type keepalivedSystem struct {
	lab     *lab.Lab
	dir     string
	profile string
	vip     netip.Prefix

	mu    sync.Mutex // guards procs
	procs map[int]*lab.Proc
}

func newKeepalived(l *lab.Lab, dir, profile string, vip netip.Prefix) (*keepalivedSystem, error) {
	if _, ok := keepalivedAdverts[profile]; !ok {
		return nil, fmt.Errorf("%w: keepalived has no profile %q", errNoProfile, profile)
	}
	return &keepalivedSystem{lab: l, dir: dir, profile: profile, vip: vip, procs: map[int]*lab.Proc{}}, nil
}

func (k *keepalivedSystem) start(ctx context.Context) error {
	var addrs []netip.Addr
	for _, h := range k.lab.Nodes() {
		addrs = append(addrs, h.Addr.Addr())
	}
	for i := range addrs {
		conf, err := renderKeepalived(k.profile, i+1, addrs, k.vip)
		if err != nil {
			return err
		}
		if err := os.WriteFile(k.confPath(i+1), []byte(conf), 0o644); err != nil {
			return err
		}
		if err := k.restart(ctx, i+1); err != nil {
			return err
		}
	}
	return nil
}

func (k *keepalivedSystem) confPath(i int) string {
	return filepath.Join(k.dir, fmt.Sprintf("keepalived-n%d.conf", i))
}

// restart starts node i's keepalived from its config:
//
//	ip netns exec NODE keepalived -n -l -D -G --vrrp -f CONF -p PID -r VRRP_PID
func (k *keepalivedSystem) restart(ctx context.Context, i int) error {
	base := filepath.Join(k.dir, fmt.Sprintf("keepalived-n%d", i))
	// After a kill the pid files stay, and the VRRP child may linger as a zombie
	// until init reaps it: keepalived would take it for a running daemon and exit.
	for _, f := range []string{base + ".pid", base + "-vrrp.pid"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	p, err := k.lab.Node(i).Start("keepalived", "--dont-fork", "--log-console", "--log-detail", "--no-syslog", "--vrrp",
		"--use-file", k.confPath(i), "--pid", base+".pid", "--vrrp_pid", base+"-vrrp.pid")
	if err != nil {
		return err
	}
	k.mu.Lock()
	k.procs[i] = p
	k.mu.Unlock()
	// keepalived has no readiness signal; it refuses a bad config at once.
	select {
	case <-p.Done():
		log, _ := os.ReadFile(p.LogPath())
		return fmt.Errorf("keepalived on n%d exited at start: %v: %s", i, p.Wait(), strings.TrimSpace(string(log)))
	case <-time.After(100 * time.Millisecond):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// signal signals node i's keepalived as a whole: the parent and its VRRP child share
// a process group, and the child does the work.
func (k *keepalivedSystem) signal(i int, sig syscall.Signal) error {
	k.mu.Lock()
	p := k.procs[i]
	k.mu.Unlock()
	if p == nil {
		return fmt.Errorf("keepalived on n%d is not running", i)
	}
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	if err := syscall.Kill(-p.Pid(), sig); err != nil {
		return fmt.Errorf("send %v to keepalived's process group on n%d: %w", sig, i, err)
	}
	return nil
}

func (k *keepalivedSystem) move(context.Context, int, int) error {
	return fmt.Errorf("%w: keepalived has no graceful move", errUnsupported)
}

// owner is the node whose MAC answered ARP last: keepalived has no status to ask
// without scripts, and the master is whoever answers.
func (k *keepalivedSystem) owner(_ context.Context, rec *cluster.Recorder, vip netip.Addr) (string, error) {
	replies := rec.Replies(vip)
	if len(replies) == 0 {
		return "", errors.New("no ARP reply seen: no keepalived master")
	}
	return rec.Recording().MACs[replies[len(replies)-1].MAC], nil
}
