package resource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// Announcer tells the network about addresses this node took over, and forgets
// addresses it let go. Implemented by package resource/announce.
type Announcer interface {
	Announce(link string, addr netip.Addr)
	Cancel(link string, addr netip.Addr)
}

// Config configures a Manager.
type Config struct {
	// Handle is the netlink handle of the namespace the addresses live in (owned by
	// the caller; tests use netlink.NewHandleAt on a throwaway namespace).
	Handle *netlink.Handle
	// DataDir holds the state file "addresses.json" that records what was added.
	DataDir string
	Logger  *slog.Logger
	// SetSysctl writes /proc/sys/NAME in the handle's namespace. Default: write it in
	// the calling process's namespace.
	SetSysctl func(name, value string) error
	// Announcer, if set, is told about every address added and removed.
	Announcer Announcer
	// BeforeAdd, if set, is asked before every address is added or its lifetime
	// refreshed; an error vetoes it (the lease-deadline check of the safety protocol).
	BeforeAdd func(Address) error
	// Lifetime, if set, is the valid_lft addresses carry: the kernel removes an
	// address that is not refreshed (Refresh) within it, so a node frozen for longer
	// loses its addresses even if nothing else runs. Zero: forever.
	Lifetime time.Duration
}

// Manager applies the set of cluster addresses this node should hold to the kernel.
// It is safe for concurrent use; batches are serialised.
type Manager struct {
	cfg   Config
	k     kernel
	state stateFile
	log   *slog.Logger

	mu       sync.Mutex      // guards the fields below and serialises batches
	owned    []Address       // what clusterd added and has not removed, as recorded
	promoted map[string]bool // links whose promote_secondaries is set
	// verified is the set the last batch put in place and read back without a
	// failure, until Invalidate: the same set again is then a no-op that reads
	// nothing (two address and route dumps of 2,000 addresses were most of a
	// reconcile pass that had nothing to do, 50-450 ms on a busy host).
	verified map[Address]bool
}

// Invalidate says the kernel may have changed behind the manager's back (an
// address or route deleted, a link gone, a periodic resync due): the next Apply
// reads and verifies the kernel again even for the same set.
func (m *Manager) Invalidate() {
	m.mu.Lock()
	m.verified = nil
	m.mu.Unlock()
}

// sameSet reports whether want is exactly the verified set.
func (m *Manager) sameSet(want []Address) bool {
	if m.verified == nil || len(want) != len(m.verified) {
		return false
	}
	for _, a := range want {
		if !m.verified[a] {
			return false
		}
	}
	return true
}

// Result reports one batch.
type Result struct {
	Plan   Plan
	Drift  []Drift           // found by the read-back (repaired where possible)
	Failed map[Address]error // wanted addresses that could not be put in place
}

// New loads the state file; it changes nothing in the kernel.
func New(cfg Config) (*Manager, error) {
	if cfg.Handle == nil {
		return nil, errors.New("resource manager needs a netlink handle")
	}
	if cfg.DataDir == "" {
		return nil, errors.New("resource manager needs a data directory for its state file")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SetSysctl == nil {
		cfg.SetSysctl = writeSysctl
	}
	m := &Manager{
		cfg:      cfg,
		k:        kernel{h: cfg.Handle},
		state:    stateFile{path: filepath.Join(cfg.DataDir, "addresses.json")},
		log:      cfg.Logger,
		promoted: make(map[string]bool),
	}
	owned, err := m.state.load()
	if err != nil {
		return nil, err
	}
	m.owned = owned
	return m, nil
}

// Recorded returns the addresses the state file says clusterd added.
func (m *Manager) Recorded() []Address {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Address(nil), m.owned...)
}

// Cleanup removes every address recorded as added: what a previous run left behind.
// The agent calls it at start, before anything else.
func (m *Manager) Cleanup(ctx context.Context) (Result, error) {
	return m.Apply(ctx, nil)
}

// Apply makes the kernel hold exactly want (among the addresses clusterd manages):
// removals first (secondaries before primaries), then adds, then a read-back of
// addresses and routes that repairs drift. Per-address failures are in
// Result.Failed; the error is for failures of the batch as a whole.
func (m *Manager) Apply(ctx context.Context, want []Address) (Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := Result{Failed: make(map[Address]error)}
	if m.sameSet(want) {
		return res, nil
	}
	m.verified = nil

	links, kern, others, err := m.readLinks(want, res.Failed)
	if err != nil {
		return res, err
	}
	m.forgetVanished(links, kern)
	var wantHere []Address
	for _, a := range want {
		if _, ok := links[a.Interface]; ok {
			wantHere = append(wantHere, a)
		}
	}
	res.Plan = MakePlan(kern, m.owned, wantHere)
	for _, a := range res.Plan.Foreign {
		res.Failed[a] = fmt.Errorf("address %s is already on %s but clusterd did not add it (remove it with `ip addr del %s dev %s`, or give the resource another address)", a.Prefix, a.Interface, a.Prefix, a.Interface)
	}
	var errs []error
	errs = append(errs, m.remove(links, res.Plan.Remove)...)
	errs = append(errs, m.demote(links, res.Plan.Demote)...)
	added := m.add(ctx, links, res.Plan.Add, res.Failed)

	drift, derrs := m.verify(links, others, want, res.Failed, added)
	res.Drift = drift
	errs = append(errs, derrs...)
	for _, a := range added {
		if m.cfg.Announcer != nil {
			m.cfg.Announcer.Announce(a.Interface, a.Prefix.Addr())
		}
	}
	if !res.Plan.Empty() || len(drift) > 0 {
		m.log.Debug("address batch applied", "plan", res.Plan.String(), "drift", len(drift), "failed", len(res.Failed))
	}
	if len(errs) == 0 && len(res.Failed) == 0 {
		m.verified = make(map[Address]bool, len(want))
		for _, a := range want {
			m.verified[a] = true
		}
	}
	return res, errors.Join(errs...)
}

// readLinks resolves the links named by want and by the record, sets
// promote_secondaries on them, and reads their addresses. Addresses on links that do
// not exist fail; recorded addresses on vanished links are forgotten (the kernel
// removed them with the link).
func (m *Manager) readLinks(want []Address, failed map[Address]error) (map[string]netlink.Link, map[string][]KernelAddr, map[string][]Address, error) {
	names := make(map[string]bool)
	for _, a := range want {
		names[a.Interface] = true
	}
	for _, a := range m.owned {
		names[a.Interface] = true
	}
	links := make(map[string]netlink.Link)
	kern := make(map[string][]KernelAddr)
	others := make(map[string][]Address)
	for name := range names {
		l, err := m.k.link(name)
		if err != nil {
			for _, a := range want {
				if a.Interface == name {
					failed[a] = err
				}
			}
			if errors.Is(err, ErrNoInterface) {
				m.forgetLink(name)
				continue
			}
			return nil, nil, nil, err
		}
		if !m.promoted[name] {
			if err := m.cfg.SetSysctl("net/ipv4/conf/"+name+"/promote_secondaries", "1"); err != nil {
				return nil, nil, nil, fmt.Errorf("%w (clusterd needs it so removing one address never removes others; run as root)", err)
			}
			m.promoted[name] = true
		}
		ka, err := m.k.addrs(l)
		if err != nil {
			return nil, nil, nil, err
		}
		links[name] = l
		kern[name] = ka
		others[name] = m.unowned(name, ka)
	}
	return links, kern, others, nil
}

// forgetVanished drops recorded addresses that are no longer in the kernel (removed
// by hand, by the fencing companion, or expired): they are added again if wanted,
// and must not be recorded twice.
func (m *Manager) forgetVanished(links map[string]netlink.Link, kern map[string][]KernelAddr) {
	present := make(map[netip.Prefix]map[string]bool)
	for link, ka := range kern {
		for _, k := range ka {
			if present[k.Prefix] == nil {
				present[k.Prefix] = map[string]bool{}
			}
			present[k.Prefix][link] = true
		}
	}
	kept := m.owned[:0:0]
	for _, a := range m.owned {
		if _, checked := links[a.Interface]; !checked || present[a.Prefix][a.Interface] {
			kept = append(kept, a)
		}
	}
	if len(kept) == len(m.owned) {
		return
	}
	m.owned = kept
	if err := m.state.save(m.owned); err != nil {
		m.log.Error("cannot record vanished addresses", "err", err)
	}
}

func (m *Manager) unowned(link string, ka []KernelAddr) []Address {
	owned := make(map[key]bool, len(m.owned))
	for _, a := range m.owned {
		owned[a.key()] = true
	}
	var out []Address
	for _, k := range ka {
		a := Address{Prefix: k.Prefix, Interface: link}
		if !owned[a.key()] {
			out = append(out, a)
		}
	}
	return out
}

func (m *Manager) forgetLink(name string) {
	kept := m.owned[:0:0]
	for _, a := range m.owned {
		if a.Interface != name {
			kept = append(kept, a)
		}
	}
	if len(kept) != len(m.owned) {
		m.owned = kept
		if err := m.state.save(m.owned); err != nil {
			m.log.Error("cannot record forgotten addresses", "link", name, "err", err)
		}
	}
}

func (m *Manager) remove(links map[string]netlink.Link, rm []Address) []error {
	if len(rm) == 0 {
		return nil
	}
	var errs []error
	var removed []Address
	gone := make(map[key]bool)
	for _, a := range rm {
		if m.cfg.Announcer != nil {
			m.cfg.Announcer.Cancel(a.Interface, a.Prefix.Addr())
		}
		if err := m.k.del(links[a.Interface], a); err != nil {
			errs = append(errs, err)
			continue
		}
		gone[a.key()] = true
		removed = append(removed, a)
	}
	logRemoved(m.log, removed)
	kept := m.owned[:0:0]
	for _, a := range m.owned {
		if !gone[a.key()] {
			kept = append(kept, a)
		}
	}
	m.owned = kept
	if err := m.state.save(m.owned); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// logRemoved logs removed addresses: each of a few, or a count and the first few of
// many (a failover of 2,000 addresses wrote 2,000 lines).
func logRemoved(log *slog.Logger, removed []Address) {
	const each = 8
	if len(removed) <= each {
		for _, a := range removed {
			log.Info("cluster address removed", "vip", a.Prefix.String(), "link", a.Interface)
		}
		return
	}
	first := make([]string, 0, each)
	for _, a := range removed[:each] {
		first = append(first, a.String())
	}
	log.Info("cluster addresses removed", "count", len(removed), "first", strings.Join(first, " "))
}

func (m *Manager) demote(links map[string]netlink.Link, as []Address) []error {
	var errs []error
	for _, a := range as {
		m.log.Warn("cluster address is the primary of a subnet the node has its own address in; re-adding it as a secondary", "vip", a.Prefix.String(), "link", a.Interface)
		if err := m.k.del(links[a.Interface], a); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := m.k.add(links[a.Interface], a, m.cfg.Lifetime); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// add records the addresses first (so a crash right after the add still finds them),
// then adds them; an address whose add fails is dropped from the record again.
func (m *Manager) add(ctx context.Context, links map[string]netlink.Link, as []Address, failed map[Address]error) []Address {
	if len(as) == 0 {
		return nil
	}
	m.owned = append(m.owned, as...)
	if err := m.state.save(m.owned); err != nil {
		m.owned = m.owned[:len(m.owned)-len(as)]
		for _, a := range as {
			failed[a] = err
		}
		return nil
	}
	var added []Address
	bad := make(map[key]bool)
	for _, a := range as {
		err := ctx.Err()
		if err == nil && m.cfg.BeforeAdd != nil {
			err = m.cfg.BeforeAdd(a)
		}
		if err == nil {
			err = m.k.add(links[a.Interface], a, m.cfg.Lifetime)
		}
		if err != nil {
			failed[a] = err
			bad[a.key()] = true
			continue
		}
		added = append(added, a)
	}
	if len(bad) > 0 {
		kept := m.owned[:0:0]
		for _, a := range m.owned {
			if !bad[a.key()] {
				kept = append(kept, a)
			}
		}
		m.owned = kept
		if err := m.state.save(m.owned); err != nil {
			m.log.Error("cannot record failed adds", "err", err)
		}
	}
	if len(added) > 0 {
		m.log.Info("cluster addresses added", "count", len(added), "first", added[0].String())
	}
	return added
}

// Refresh renews the lifetime of every address clusterd holds (each checked with
// BeforeAdd first). About 26 µs per address: 1,000 addresses every 10 s is 0.3 % of
// a core.
func (m *Manager) Refresh(ctx context.Context) error {
	if m.cfg.Lifetime == 0 {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	links := map[string]netlink.Link{}
	var errs []error
	defer func() {
		if len(errs) > 0 {
			m.verified = nil // an address or link may be gone: the next batch looks
		}
	}()
	for _, a := range m.owned {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if m.cfg.BeforeAdd != nil && m.cfg.BeforeAdd(a) != nil {
			continue // no lease: let it age out or be removed by the next batch
		}
		l, ok := links[a.Interface]
		if !ok {
			var err error
			if l, err = m.k.link(a.Interface); err != nil {
				errs = append(errs, err)
				continue
			}
			links[a.Interface] = l
		}
		if err := m.k.add(l, a, m.cfg.Lifetime); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// RemoveRecorded removes from the kernel every address the state file in dataDir
// lists, secondaries first, without rewriting the file: the fencing companion's
// action when the agent died or its lease ran out. It returns how many it removed.
func RemoveRecorded(h *netlink.Handle, dataDir string) (int, error) {
	return RemoveRecordedExcept(h, dataDir, nil)
}

// RemoveRecordedExcept is RemoveRecorded leaving in place the addresses whose IP keep
// reports (nil: none); the removals are MakePlan's, ordered so that none takes a
// kept address with it. The fencing companion's action at a lease deadline while
// the agent keeps addresses through a quorum loss (on_quorum_loss = keep).
func RemoveRecordedExcept(h *netlink.Handle, dataDir string, keep func(netip.Addr) bool) (int, error) {
	owned, err := stateFile{path: filepath.Join(dataDir, "addresses.json")}.load()
	if err != nil || len(owned) == 0 {
		return 0, err
	}
	k := kernel{h: h}
	kern := map[string][]KernelAddr{}
	links := map[string]netlink.Link{}
	for _, a := range owned {
		if _, done := links[a.Interface]; done {
			continue
		}
		l, err := k.link(a.Interface)
		if err != nil {
			continue // the interface is gone, and its addresses with it
		}
		ka, err := k.addrs(l)
		if err != nil {
			return 0, err
		}
		links[a.Interface], kern[a.Interface] = l, ka
	}
	n := 0
	var errs []error
	var kept []Address
	for _, a := range owned {
		if keep != nil && keep(a.Prefix.Addr()) {
			kept = append(kept, a)
		}
	}
	for _, a := range MakePlan(kern, owned, kept).Remove {
		if err := k.del(links[a.Interface], a); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}
