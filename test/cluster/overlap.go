package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/vishvananda/netlink"
)

// Recorder watches who holds a set of cluster addresses, to check the invariant "no two
// nodes ever hold, or answer ARP for, the same address at the same time, and no address
// is left behind". It watches in two places:
//
//   - the kernel of every node: a netlink address subscription opened inside each node
//     namespace (`ip -n NODE monitor address`), seeded with the addresses present when
//     Run starts (`ip -n NODE addr show`);
//   - the wire: a Prober per address in the client namespace asks "who has VIP?" every
//     Interval and notes every MAC that answers (replies are unicast, so a second
//     holder is invisible to a passive listener on the bridge).
//
// All namespaces share one kernel clock and every event is stamped by this process's
// monotonic clock as it arrives, so intervals from different nodes compare exactly, up
// to the delivery latency of a netlink message: microseconds, a millisecond or more on
// a loaded machine. Changes on two nodes closer together than that may be misordered.
type Recorder struct {
	// Interval is the ARP probe period (default 5 ms). Set it before Run.
	Interval time.Duration

	lab   *lab.Lab
	vips  []netip.Addr
	nodes []*lab.Host
	names map[*lab.Host]string // "n1", "n2", ... as the agents are named
	ready chan struct{}        // closed once Run watches everything

	mu      sync.Mutex // guards the fields below
	running bool
	start   time.Time
	seeds   []AddrEvent
	events  []AddrEvent
	marks   []Mark
	probers map[netip.Addr]*Prober
}

// AddrEvent is an address of interest appearing on (Added) or leaving a node.
type AddrEvent struct {
	At    time.Time
	Node  string
	VIP   netip.Addr
	Added bool
}

// Mark records that a node died (its link went down, so its kernel's addresses reach
// nobody) or came back. Kernel-level overlap with a dead node is not counted.
type Mark struct {
	At   time.Time
	Node string
	Dead bool
}

// DefaultProbeInterval is the Recorder's ARP probe period: the benchmark's ≤ 10 ms
// resolution with room to spare (issue 4 asks for at most 10 ms).
const DefaultProbeInterval = 5 * time.Millisecond

// subscribeBuffer is the receive buffer of each address subscription. Every address
// change in a namespace is delivered, also of addresses not watched (a lifetime refresh
// of 1,000 addresses is 1,000 messages of ~80 bytes); an overflow (ENOBUFS) ends the
// subscription and fails Run, so leave ample room.
const subscribeBuffer = 4 << 20

// NewRecorder prepares a recorder for the lab's nodes and the given addresses; Run
// starts it. ARP is probed only if the lab has a client.
func NewRecorder(l *lab.Lab, vips []netip.Addr) (*Recorder, error) {
	if len(vips) == 0 {
		return nil, errors.New("recorder: no addresses to watch (pass at least one cluster address)")
	}
	r := &Recorder{
		Interval: DefaultProbeInterval,
		lab:      l,
		vips:     slices.Clone(vips),
		nodes:    l.Nodes(),
		names:    map[*lab.Host]string{},
		ready:    make(chan struct{}),
		probers:  map[netip.Addr]*Prober{},
	}
	for i, h := range r.nodes {
		r.names[h] = fmt.Sprintf("n%d", i+1)
	}
	return r, nil
}

// Ready is closed once Run has subscribed in every namespace, taken the initial state
// and started probing.
func (r *Recorder) Ready() <-chan struct{} { return r.ready }

// Run records until ctx ends. It returns an error if a subscription or prober cannot
// be opened (before Ready is closed) or a subscription fails while recording (events
// may have been lost: the recording is then not trustworthy).
func (r *Recorder) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return errors.New("recorder: Run called twice")
	}
	r.running = true
	r.mu.Unlock()

	var (
		wg     sync.WaitGroup
		errMu  sync.Mutex
		runErr []error
	)
	fail := func(err error) {
		errMu.Lock()
		runErr = append(runErr, err)
		errMu.Unlock()
	}
	done := make(chan struct{}) // closing it closes every subscription socket
	pctx, cancel := context.WithCancel(ctx)
	stop := func() error {
		cancel()
		close(done)
		wg.Wait()
		errMu.Lock()
		defer errMu.Unlock()
		return errors.Join(runErr...)
	}
	for _, h := range r.nodes {
		ch := make(chan netlink.AddrUpdate)
		name := r.names[h]
		opts := netlink.AddrSubscribeOptions{ReceiveBufferSize: subscribeBuffer, ReceiveBufferForceSize: true, ErrorCallback: func(err error) {
			select {
			case <-done: // the socket was closed on purpose
			default:
				fail(fmt.Errorf("recorder: address subscription in %s: %w", h.Name, err))
			}
		}}
		// The socket is opened by a thread inside the namespace and stays there.
		err := h.Do(func() error { return netlink.AddrSubscribeWithOptions(ch, done, opts) })
		if err != nil {
			return errors.Join(fmt.Errorf("recorder: subscribe to address events in %s (ip -n %s monitor address): %w", h.Name, h.Name, err), stop())
		}
		wg.Add(1)
		go func() { // ends when the subscription closes ch, after done is closed
			defer wg.Done()
			for u := range ch {
				r.note(name, u)
			}
		}()
	}
	r.mu.Lock()
	r.start = time.Now()
	r.mu.Unlock()
	seeds, err := r.seed()
	if err != nil {
		return errors.Join(err, stop())
	}
	r.mu.Lock()
	r.seeds = seeds
	r.mu.Unlock()
	if err := r.startProbers(pctx, &wg); err != nil {
		return errors.Join(err, stop())
	}
	close(r.ready)
	<-ctx.Done()
	return stop()
}

// note records an address event if it concerns a watched address. A new-address
// message for an address already held (a lifetime refresh) is recorded as well; the
// arithmetic treats it as no change.
func (r *Recorder) note(node string, u netlink.AddrUpdate) {
	at := time.Now()
	ip, ok := netip.AddrFromSlice(u.LinkAddress.IP)
	if !ok || !slices.Contains(r.vips, ip.Unmap()) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start.IsZero() || at.Before(r.start) {
		return // before the seed: the address list taken at start reflects it
	}
	r.events = append(r.events, AddrEvent{At: at, Node: node, VIP: ip.Unmap(), Added: u.NewAddr})
}

// seed lists the watched addresses present on every node (`ip -n NODE addr show`).
func (r *Recorder) seed() ([]AddrEvent, error) {
	r.mu.Lock()
	start := r.start
	r.mu.Unlock()
	var seeds []AddrEvent
	for _, h := range r.nodes {
		nh, err := h.Handle()
		if err != nil {
			return nil, fmt.Errorf("recorder: %w", err)
		}
		addrs, err := nh.AddrList(nil, netlink.FAMILY_ALL)
		nh.Close()
		if err != nil {
			return nil, fmt.Errorf("recorder: list addresses in %s (ip -n %s addr show): %w", h.Name, h.Name, err)
		}
		for _, a := range addrs {
			ip, ok := netip.AddrFromSlice(a.IP)
			if ok && slices.Contains(r.vips, ip.Unmap()) {
				seeds = append(seeds, AddrEvent{At: start, Node: r.names[h], VIP: ip.Unmap(), Added: true})
			}
		}
	}
	return seeds, nil
}

// startProbers opens one ARP prober per address in the client and runs each in a
// goroutine that wg waits for; they stop when ctx ends.
func (r *Recorder) startProbers(ctx context.Context, wg *sync.WaitGroup) error {
	client := r.lab.Client()
	if client == nil {
		return nil
	}
	for _, vip := range r.vips {
		p, err := NewProber(client, vip, r.Interval)
		if err != nil {
			return fmt.Errorf("recorder: %w", err)
		}
		r.mu.Lock()
		r.probers[vip] = p
		r.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(ctx)
		}()
	}
	return nil
}

// Dead marks h dead from at on: its link is down, so what its kernel holds reaches
// nobody and does not count as a second holder. ARP needs no such exclusion.
func (r *Recorder) Dead(h *lab.Host, at time.Time) { r.mark(h, at, true) }

// Revived marks h alive again from at on (its link is back up): from then on its
// kernel's addresses count again. Marks carry the caller's time while events carry
// their arrival time: if h's addresses are removed before it comes back, wait until
// the recorder has seen the removal (Report's Holders) before reviving it.
func (r *Recorder) Revived(h *lab.Host, at time.Time) { r.mark(h, at, false) }

func (r *Recorder) mark(h *lab.Host, at time.Time, dead bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.marks = append(r.marks, Mark{At: at, Node: r.names[h], Dead: dead})
}

// Node returns the recorder's name for h ("n2"), "" if h is not a node.
func (r *Recorder) Node(h *lab.Host) string { return r.names[h] }

// Replies returns the ARP replies seen so far for vip (nil without a client).
func (r *Recorder) Replies(vip netip.Addr) []Reply {
	r.mu.Lock()
	p := r.probers[vip]
	r.mu.Unlock()
	if p == nil {
		return nil
	}
	return p.Replies()
}

// Recording returns a copy of what was recorded so far.
func (r *Recorder) Recording() Recording {
	r.mu.Lock()
	rec := Recording{
		Start:   r.start,
		VIPs:    slices.Clone(r.vips),
		Seeds:   slices.Clone(r.seeds),
		Events:  slices.Clone(r.events),
		Marks:   slices.Clone(r.marks),
		Replies: map[netip.Addr][]Reply{},
		MACs:    map[string]string{},
	}
	probers := maps.Clone(r.probers)
	r.mu.Unlock()
	for vip, p := range probers {
		rec.Replies[vip] = p.Replies()
	}
	for h, name := range r.names {
		rec.MACs[h.MAC.String()] = name
	}
	return rec
}

// Report ends the analysis now: see Recording.Report. owners names, per address, the
// node that should hold it at the end (missing: nobody should).
func (r *Recorder) Report(owners map[netip.Addr]string) Report {
	return r.Recording().Report(time.Now(), owners)
}

// Recording is the raw material of a Report. Report is a pure function of it, so the
// arithmetic is tested without a kernel.
type Recording struct {
	Start   time.Time
	VIPs    []netip.Addr
	Seeds   []AddrEvent // held when recording started (At = Start)
	Events  []AddrEvent // in arrival order per node
	Marks   []Mark
	Replies map[netip.Addr][]Reply
	MACs    map[string]string // MAC → node name, to name ARP answerers
}

// Interval is a time during which one node held an address in its kernel.
type Interval struct {
	Node     string
	From, To time.Time
	Open     bool // still held when the report was made (To is the report's end)
}

// Span is a time during which several nodes held an address at once.
type Span struct {
	From, To time.Time
	Nodes    []string // every node that held it during the span
}

// Report is the verdict of a recording, per address.
type Report struct {
	Start, End time.Time
	VIPs       []VIPReport
}

// VIPReport is what happened to one address.
type VIPReport struct {
	VIP       netip.Addr
	Intervals []Interval // every kernel holding, by start, dead time included

	// Overlap is the total time two or more live nodes held the address in their
	// kernels at once (time while a node was marked dead is left out); Overlaps says
	// when and who.
	Overlap  time.Duration
	Overlaps []Span

	Rounds       int      // ARP probe rounds that got any reply
	DoubleRounds int      // rounds answered by two or more MACs: two holders on the wire
	Answerers    []string // nodes (or unknown MACs) that ever answered ARP

	Holders    []string // nodes whose kernel holds the address at End
	LeftBehind []string // Holders other than the owner named to Report
}

// Report computes the intervals, overlaps and leftovers of every address up to end.
// owners names the node that should hold each address at end; any other holder, dead
// or alive, is left behind.
func (rec Recording) Report(end time.Time, owners map[netip.Addr]string) Report {
	rep := Report{Start: rec.Start, End: end}
	dead := deadSpans(rec.Marks, end)
	for _, vip := range rec.VIPs {
		v := VIPReport{VIP: vip}
		v.Intervals = intervals(forVIP(rec.Seeds, vip), forVIP(rec.Events, vip), end)
		v.Overlap, v.Overlaps = overlap(alive(v.Intervals, dead))
		for _, iv := range v.Intervals {
			if iv.Open {
				v.Holders = append(v.Holders, iv.Node)
				if iv.Node != owners[vip] {
					v.LeftBehind = append(v.LeftBehind, iv.Node)
				}
			}
		}
		slices.Sort(v.Holders)
		slices.Sort(v.LeftBehind)
		v.Rounds, v.DoubleRounds, v.Answerers = arpStats(rec.Replies[vip], rec.MACs)
		rep.VIPs = append(rep.VIPs, v)
	}
	return rep
}

// Err returns nil if no address ever had two holders (kernel or ARP) and none was
// left behind, and otherwise an error that says what went wrong for which address.
func (rep Report) Err() error {
	var errs []error
	for _, v := range rep.VIPs {
		if v.Overlap > 0 {
			var spans []string
			for _, s := range v.Overlaps {
				spans = append(spans, fmt.Sprintf("%v by %v", s.To.Sub(s.From), s.Nodes))
			}
			errs = append(errs, fmt.Errorf("%s held by two live nodes for %v: %s", v.VIP, v.Overlap, strings.Join(spans, ", ")))
		}
		if v.DoubleRounds > 0 {
			errs = append(errs, fmt.Errorf("%s answered by two MACs in %d ARP rounds (answerers %v)", v.VIP, v.DoubleRounds, v.Answerers))
		}
		if len(v.LeftBehind) > 0 {
			errs = append(errs, fmt.Errorf("%s left behind on %v", v.VIP, v.LeftBehind))
		}
	}
	return errors.Join(errs...)
}

// String summarises the report, one line per address plus one per overlap.
func (rep Report) String() string {
	var b strings.Builder
	for _, v := range rep.VIPs {
		fmt.Fprintf(&b, "%s: %d intervals, overlap %v, ARP rounds %d (double %d, answerers %v), holders %v, left behind %v\n",
			v.VIP, len(v.Intervals), v.Overlap, v.Rounds, v.DoubleRounds, v.Answerers, v.Holders, v.LeftBehind)
		for _, iv := range v.Intervals {
			fmt.Fprintf(&b, "  %s holds %+.3fs..%+.3fs\n", iv.Node, iv.From.Sub(rep.Start).Seconds(), iv.To.Sub(rep.Start).Seconds())
		}
		for _, s := range v.Overlaps {
			fmt.Fprintf(&b, "  overlap %v at %+.3fs: %v\n", s.To.Sub(s.From), s.From.Sub(rep.Start).Seconds(), s.Nodes)
		}
	}
	return b.String()
}

func forVIP(events []AddrEvent, vip netip.Addr) []AddrEvent {
	var out []AddrEvent
	for _, e := range events {
		if e.VIP == vip {
			out = append(out, e)
		}
	}
	return out
}

// intervals turns seeds and add/delete events of one address into holding intervals,
// closing those still open at end. An add while held (a refresh) changes nothing, nor
// does a delete of an address not held.
func intervals(seeds, events []AddrEvent, end time.Time) []Interval {
	var ts []toggle
	for _, e := range append(slices.Clone(seeds), events...) {
		ts = append(ts, toggle{At: e.At, Node: e.Node, On: e.Added})
	}
	return toggled(ts, end)
}

// deadSpans turns marks into per-node times of death, each ending at the revival or
// at end.
func deadSpans(marks []Mark, end time.Time) map[string][]Span {
	var ts []toggle
	for _, m := range marks {
		ts = append(ts, toggle{At: m.At, Node: m.Node, On: m.Dead})
	}
	out := map[string][]Span{}
	for _, iv := range toggled(ts, end) {
		out[iv.Node] = append(out[iv.Node], Span{From: iv.From, To: iv.To})
	}
	return out
}

// toggle switches a per-node state on or off.
type toggle struct {
	At   time.Time
	Node string
	On   bool
}

// toggled returns the intervals during which each node's state was on, sorted by
// start; those still on at end are Open and end there. Switching on what is on, or
// off what is off, changes nothing.
func toggled(ts []toggle, end time.Time) []Interval {
	sorted := slices.Clone(ts)
	slices.SortStableFunc(sorted, func(a, b toggle) int { return a.At.Compare(b.At) })
	since := map[string]time.Time{}
	var out []Interval
	for _, t := range sorted {
		from, on := since[t.Node]
		switch {
		case t.On && !on:
			since[t.Node] = t.At
		case !t.On && on:
			out = append(out, Interval{Node: t.Node, From: from, To: t.At})
			delete(since, t.Node)
		}
	}
	for node, from := range since {
		out = append(out, Interval{Node: node, From: from, To: end, Open: true})
	}
	slices.SortFunc(out, func(a, b Interval) int {
		return cmp.Or(a.From.Compare(b.From), cmp.Compare(a.Node, b.Node))
	})
	return out
}

// alive cuts the dead spans of each node out of its intervals.
func alive(ivs []Interval, dead map[string][]Span) []Interval {
	var out []Interval
	for _, iv := range ivs {
		parts := []Interval{iv}
		for _, d := range dead[iv.Node] {
			var next []Interval
			for _, p := range parts {
				next = append(next, cut(p, d)...)
			}
			parts = next
		}
		out = append(out, parts...)
	}
	return out
}

// cut returns what is left of iv outside d: nothing, iv itself, or one or two pieces.
func cut(iv Interval, d Span) []Interval {
	if !d.From.Before(iv.To) || !d.To.After(iv.From) {
		return []Interval{iv} // disjoint
	}
	var out []Interval
	if d.From.After(iv.From) {
		out = append(out, Interval{Node: iv.Node, From: iv.From, To: d.From})
	}
	if d.To.Before(iv.To) {
		out = append(out, Interval{Node: iv.Node, From: d.To, To: iv.To, Open: iv.Open})
	}
	return out
}

// overlap sweeps the intervals and returns the total time during which two or more
// distinct nodes held the address, with the spans (contiguous overlap merged). An
// interval ending at the instant another begins does not overlap it.
func overlap(ivs []Interval) (time.Duration, []Span) {
	type edge struct {
		at   time.Time
		node string
		up   bool
	}
	var edges []edge
	for _, iv := range ivs {
		if iv.To.After(iv.From) {
			edges = append(edges, edge{iv.From, iv.Node, true}, edge{iv.To, iv.Node, false})
		}
	}
	slices.SortStableFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		switch { // ends before starts at the same instant
		case !a.up && b.up:
			return -1
		case a.up && !b.up:
			return 1
		}
		return 0
	})
	active := map[string]int{} // node → open intervals (a node's own may touch)
	var total time.Duration
	var spans []Span
	var prev time.Time
	for _, e := range edges {
		if len(active) >= 2 && e.at.After(prev) {
			total += e.at.Sub(prev)
			nodes := slices.Sorted(maps.Keys(active))
			if n := len(spans); n > 0 && spans[n-1].To.Equal(prev) {
				spans[n-1].To = e.at
				spans[n-1].Nodes = union(spans[n-1].Nodes, nodes)
			} else {
				spans = append(spans, Span{From: prev, To: e.at, Nodes: nodes})
			}
		}
		if e.up {
			active[e.node]++
		} else if active[e.node]--; active[e.node] <= 0 {
			delete(active, e.node)
		}
		prev = e.at
	}
	return total, spans
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	return out
}

// arpStats counts the rounds that got replies and those answered by more than one MAC,
// and names every answerer (by node, or by MAC if unknown).
func arpStats(replies []Reply, macs map[string]string) (rounds, double int, answerers []string) {
	seen := map[int]map[string]bool{}
	who := map[string]bool{}
	for _, rp := range replies {
		if seen[rp.Round] == nil {
			seen[rp.Round] = map[string]bool{}
		}
		seen[rp.Round][rp.MAC] = true
		name := macs[rp.MAC]
		if name == "" {
			name = rp.MAC
		}
		who[name] = true
	}
	return len(seen), DoubleRounds(replies), slices.Sorted(maps.Keys(who))
}
