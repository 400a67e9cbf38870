// Package lab builds a throwaway network of Linux network namespaces for clusterd's
// tests, benchmarks and demo: a "switch" namespace holding a bridge, and node, client
// and WINS namespaces each joined to it by a veth pair whose inside end is eth0.
//
// Addresses come from 198.18.0.0/15 (RFC 2544, benchmarking) and 2001:2::/48 (RFC
// 5180, its IPv6 twin) only; the host's own interfaces are never touched. Namespace
// names follow `ip netns` conventions, so `ip netns exec NAME ...` works on them.
// See README.md.
package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MaxNodes is the largest Options.Nodes: node addresses run from 198.18.0.101 to
// 198.18.0.254.
const MaxNodes = 154

// Lab addressing. Every host gets one address of each family on eth0.
var (
	LAN        = netip.MustParsePrefix("198.18.0.0/16") // IPv4 LAN of the bridge
	LAN6       = netip.MustParsePrefix("2001:2::/64")   // IPv6 LAN of the bridge
	broadcast4 = net.IP{198, 18, 255, 255}              // `brd +` of LAN (4-byte form: IFA_BROADCAST)
)

// Options choose the lab's shape. The zero value is a lab with only a switch, which
// Create refuses.
type Options struct {
	Nodes  int  // node namespaces n1…nN, 0 to MaxNodes
	Client bool // add the client namespace (198.18.0.2)
	WINS   bool // add the WINS namespace (198.18.0.1); nothing is started in it

	// Manual makes a lab that outlives its creator (`scripts/lab up`): its namespaces
	// are named cdlab-m-…, CleanStale never removes them, and only Remove (or
	// `scripts/lab down`) does. New refuses it: a test's lab must die with the test.
	Manual bool

	// Grace is how long Close waits after SIGTERM before it sends SIGKILL to the
	// processes started with Host.Start. Default 2 s: long enough for a daemon to run
	// its shutdown path, short enough to keep a failing test fast.
	Grace time.Duration

	// Dir receives the logs of Host.Start and captures. Default: a new directory
	// under os.TempDir, removed by Close unless the test failed.
	Dir string
}

// Lab is a running lab. Its methods are safe for concurrent use, except that nothing
// may use the lab once Close has begun.
type Lab struct {
	id       string
	opts     Options
	sw       *Host
	nodes    []*Host
	client   *Host
	wins     *Host
	staleErr error // what CleanStale said before the lab was made

	mu      sync.Mutex // guards the fields below
	dir     string     // log directory, made on first use
	ownDir  bool       // dir was made by the lab and is removed by Close
	keepDir bool       // keep dir even if ownDir (the test failed)
	procs   []*Proc    // started with Host.Start, in start order
	spawner *spawner   // forks Host.Start's processes; made on first use
	nproc   int        // numbers log files
	closed  bool

	faultMu sync.Mutex // serialises fault changes and their nft transactions
	faults  faults
}

// New creates a lab for a test and tears it down when the test ends, also when it
// failed; on failure the tails of the logs of started processes are printed and the
// log directory is kept. It fails the test if the lab cannot be built.
func New(tb testing.TB, opts Options) *Lab {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Fatalf("lab: network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run the tests as root, as CI does")
	}
	if opts.Manual {
		tb.Fatalf("lab: Options.Manual is for `scripts/lab up`; a test's lab must be removed with the test")
	}
	l, err := Create(context.Background(), opts)
	if err != nil {
		tb.Fatalf("lab: %v", err)
	}
	if l.staleErr != nil {
		tb.Logf("lab: removing stale labs: %v", l.staleErr)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			l.mu.Lock()
			l.keepDir = true
			l.mu.Unlock()
			l.logTails(tb)
		}
		if err := l.Close(); err != nil {
			tb.Errorf("lab: tear down %s: %v", l.id, err)
		}
	})
	return l
}

// Create builds a lab: it first removes stale labs (CleanStale), then creates the
// switch with bridge br0 and one namespace per host, each with lo and eth0 up and its
// addresses on eth0. The caller must Close it. On error nothing is left behind.
func Create(ctx context.Context, opts Options) (*Lab, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if opts.Grace <= 0 {
		opts.Grace = 2 * time.Second
	}
	staleErr := CleanStale()
	if err := prepareRunDir(); err != nil {
		return nil, err
	}
	owner := strconv.Itoa(os.Getpid())
	if opts.Manual {
		owner = manualOwner
	}
	l := &Lab{opts: opts, staleErr: staleErr, dir: opts.Dir}
	var err error
	for range 10 {
		if l.id, err = newID(owner); err != nil {
			return nil, err
		}
		l.sw = &Host{Name: nsName(l.id, roleSwitch), Link: "br0", lab: l}
		if l.sw.ns, err = createNS(l.sw.Name); !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("create switch namespace %s: %w", l.sw.Name, err)
	}
	if err := l.build(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("create lab %s: %w", l.id, err), l.Close())
	}
	return l, nil
}

func (o Options) validate() error {
	if o.Nodes < 0 || o.Nodes > MaxNodes {
		return fmt.Errorf("lab: Options.Nodes = %d, want 0 to %d", o.Nodes, MaxNodes)
	}
	if o.Nodes == 0 && !o.Client && !o.WINS {
		return fmt.Errorf("lab: Options has no hosts; set Nodes, Client or WINS")
	}
	return nil
}

// plan returns the hosts the options ask for, with names and addresses but no
// namespace yet.
func (l *Lab) plan() []*Host {
	var hosts []*Host
	if l.opts.WINS {
		l.wins = l.newHost(roleWINS, 1)
		hosts = append(hosts, l.wins)
	}
	if l.opts.Client {
		l.client = l.newHost(roleClient, 2)
		hosts = append(hosts, l.client)
	}
	for i := 1; i <= l.opts.Nodes; i++ {
		n := l.newHost("n"+strconv.Itoa(i), 100+i)
		l.nodes = append(l.nodes, n)
		hosts = append(hosts, n)
	}
	return hosts
}

// newHost names a host and derives its addresses from the last octet: 198.18.0.X/16,
// 2001:2::X/64 (X written in decimal digits) and MAC 02:00:c6:12:00:X (c6:12 is 198.18).
func (l *Lab) newHost(role string, x int) *Host {
	return &Host{
		Name:  nsName(l.id, role),
		Link:  "eth0",
		Addr:  netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 0, byte(x)}), LAN.Bits()),
		Addr6: netip.PrefixFrom(netip.MustParseAddr("2001:2::"+strconv.Itoa(x)), LAN6.Bits()),
		MAC:   net.HardwareAddr{0x02, 0x00, 0xc6, 0x12, 0x00, byte(x)},
		lab:   l,
		port:  role,
		ns:    netns.None(),
	}
}

// build sets up the switch and every host. Hosts are added to the lab before their
// namespace exists so that Close deletes whatever was made.
func (l *Lab) build(ctx context.Context) error {
	sw, err := l.sw.Handle()
	if err != nil {
		return err
	}
	defer sw.Close()
	if err := l.buildSwitch(sw); err != nil {
		return err
	}
	for _, h := range l.plan() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := l.buildHost(sw, h); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	for _, h := range l.Hosts() {
		if err := h.waitCarrier(5 * time.Second); err != nil {
			return err
		}
	}
	return nil
}

// buildSwitch disables IPv6 in the switch (it is a pure layer-2 device and must not
// send router solicitations or ND of its own) and adds bridge br0 without multicast
// snooping, so IPv6 neighbour discovery is flooded like a dumb switch does:
//
//	ip link add br0 type bridge mcast_snooping 0 && ip link set br0 up
func (l *Lab) buildSwitch(sw *netlink.Handle) error {
	for _, key := range []string{"net/ipv6/conf/all/disable_ipv6", "net/ipv6/conf/default/disable_ipv6"} {
		if err := l.sw.Sysctl(key, "1"); err != nil {
			return err
		}
	}
	off := false
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: l.sw.Link}, MulticastSnooping: &off}
	if err := sw.LinkAdd(br); err != nil {
		return fmt.Errorf("add bridge %s: %w", br.Name, err)
	}
	if err := sw.LinkSetUp(br); err != nil {
		return fmt.Errorf("set bridge %s up: %w", br.Name, err)
	}
	return nil
}

// buildHost creates the host's namespace and its veth pair, the switch end named after
// the host's role and enslaved to br0, the host end named eth0; DAD is disabled before
// any IPv6 address exists. Equivalent to:
//
//	ip netns add NAME
//	ip -n SW link add ROLE group 205 type veth peer name eth0 address MAC netns NAME
//	ip -n SW link set ROLE master br0 up
//	ip netns exec NAME sysctl net.ipv6.conf.{all,default,eth0}.accept_dad=0
//	ip -n NAME addr add ADDR brd + dev eth0; ip -n NAME addr add ADDR6 dev eth0 nodad
//	ip -n NAME link set lo up; ip -n NAME link set eth0 up
func (l *Lab) buildHost(sw *netlink.Handle, h *Host) error {
	var err error
	if h.ns, err = createNS(h.Name); err != nil {
		return err
	}
	for _, key := range []string{"net/ipv6/conf/all/accept_dad", "net/ipv6/conf/default/accept_dad"} {
		if err := h.Sysctl(key, "0"); err != nil {
			return err
		}
	}
	veth := &netlink.Veth{
		LinkAttrs:        netlink.LinkAttrs{Name: h.port, MasterIndex: l.bridgeIndex(sw), Group: portGroup},
		PeerName:         h.Link,
		PeerHardwareAddr: h.MAC,
		PeerNamespace:    netlink.NsFd(h.ns),
	}
	if err := sw.LinkAdd(veth); err != nil {
		return fmt.Errorf("add veth %s/%s: %w", h.port, h.Link, err)
	}
	port, err := sw.LinkByName(h.port)
	if err != nil {
		return fmt.Errorf("find switch port %s: %w", h.port, err)
	}
	if err := sw.LinkSetUp(port); err != nil {
		return fmt.Errorf("set switch port %s up: %w", h.port, err)
	}
	if err := h.Sysctl("net/ipv6/conf/"+h.Link+"/accept_dad", "0"); err != nil {
		return err
	}
	nh, err := h.Handle()
	if err != nil {
		return err
	}
	defer nh.Close()
	lo, err := nh.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("find lo: %w", err)
	}
	if err := nh.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	eth, err := nh.LinkByName(h.Link)
	if err != nil {
		return fmt.Errorf("find %s: %w", h.Link, err)
	}
	addrs := []*netlink.Addr{
		{IPNet: prefixNet(h.Addr), Broadcast: broadcast4},
		{IPNet: prefixNet(h.Addr6), Flags: unix.IFA_F_NODAD},
	}
	for _, a := range addrs {
		if err := nh.AddrAdd(eth, a); err != nil {
			return fmt.Errorf("add %s to %s: %w", a.IPNet, h.Link, err)
		}
	}
	if err := nh.LinkSetUp(eth); err != nil {
		return fmt.Errorf("set %s up: %w", h.Link, err)
	}
	return nil
}

// bridgeIndex returns br0's interface index in the switch, 0 if it cannot be found
// (LinkAdd then fails with a clearer error than this lookup would give).
func (l *Lab) bridgeIndex(sw *netlink.Handle) int {
	br, err := sw.LinkByName(l.sw.Link)
	if err != nil {
		return 0
	}
	return br.Attrs().Index
}

func prefixNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ID returns the lab id, e.g. "4242-9f3a"; every namespace name is cdlab-ID-ROLE.
func (l *Lab) ID() string { return l.id }

// Node returns node i, counting from 1 as the namespace names do (n1 is Node(1)). It
// panics if there is no such node, like an index out of range.
func (l *Lab) Node(i int) *Host {
	if i < 1 || i > len(l.nodes) {
		panic(fmt.Sprintf("lab: Node(%d) of a lab with %d nodes (nodes count from 1)", i, len(l.nodes)))
	}
	return l.nodes[i-1]
}

// Nodes returns the nodes in order, n1 first.
func (l *Lab) Nodes() []*Host { return append([]*Host(nil), l.nodes...) }

// Client returns the client host, or nil if Options.Client was false.
func (l *Lab) Client() *Host { return l.client }

// WINS returns the WINS host, or nil if Options.WINS was false.
func (l *Lab) WINS() *Host { return l.wins }

// Switch returns the switch namespace as a Host whose Link is the bridge br0 and which
// has no addresses: use it to watch the LAN (Command, Start, Do with a packet socket).
// The fault methods fail on it.
func (l *Lab) Switch() *Host { return l.sw }

// Hosts returns every host with an eth0 (WINS, client, nodes; not the switch) that
// exists, in that order.
func (l *Lab) Hosts() []*Host {
	var hosts []*Host
	for _, h := range append([]*Host{l.wins, l.client}, l.nodes...) {
		if h != nil && h.ns.IsOpen() {
			hosts = append(hosts, h)
		}
	}
	return hosts
}

// Close tears the lab down, trying every step and joining their errors: it stops the
// processes started with Host.Start (SIGTERM, SIGKILL after Options.Grace), kills any
// other process still inside a lab namespace, deletes the veth pairs and then the
// namespaces, and removes the log directory it made (kept if a test failed). Calling
// Close again does nothing.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	procs := l.procs
	l.mu.Unlock()

	errs := []error{stopAll(procs, l.opts.Grace)}
	all := append(l.Hosts(), l.sw)
	for _, h := range all {
		if h.ns.IsOpen() {
			errs = append(errs, sweep(h.Name))
		}
	}
	l.mu.Lock()
	sp := l.spawner
	l.mu.Unlock()
	if sp != nil {
		sp.stop()
	}
	errs = append(errs, l.deleteVeths())
	for _, h := range all {
		if h.ns.IsOpen() {
			h.ns.Close()
			h.ns = netns.None()
			errs = append(errs, deleteNS(h.Name))
		}
	}
	l.mu.Lock()
	if l.ownDir && !l.keepDir {
		errs = append(errs, os.RemoveAll(l.dir))
	}
	l.mu.Unlock()
	return errors.Join(errs...)
}

// portGroup is the interface group of the switch ends of the veth pairs, so that
// Close deletes them all in one batched request. One at a time, every deletion waits
// for an RCU grace period: measured 1 s for 51 pairs, against 50 ms as a batch.
const portGroup = 0xcd

// deleteVeths deletes the switch end of every veth pair, which deletes the eth0 end
// too, in one request (`ip -n SW link del group 205`). A namespace that something
// still holds open (a leaked socket) is thus cut off the LAN even before it is freed.
func (l *Lab) deleteVeths() error {
	if !l.sw.ns.IsOpen() {
		return nil
	}
	return l.sw.Do(func() error {
		req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
		req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
		req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(portGroup)))
		_, err := req.Execute(unix.NETLINK_ROUTE, 0)
		if err != nil && !errors.Is(err, unix.ENODEV) { // ENODEV: no veth left
			return fmt.Errorf("delete veths (ip -n %s link del group %d): %w", l.sw.Name, portGroup, err)
		}
		return nil
	})
}

// logDir returns the log directory, creating it on first use.
func (l *Lab) logDir() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", fmt.Errorf("lab %s is closed", l.id)
	}
	if l.dir != "" {
		return l.dir, nil
	}
	dir, err := os.MkdirTemp("", Prefix+l.id+"-")
	if err != nil {
		return "", fmt.Errorf("create log directory: %w", err)
	}
	l.dir, l.ownDir = dir, true
	return dir, nil
}
