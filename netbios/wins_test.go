package netbios

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
	"github.com/clusterd/clusterd/netbios/winstest"
)

// events collects what a client reports.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.all = append(e.all, ev)
}

func (e *events) list() []Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.all)
}

func (e *events) count(id int) int {
	n := 0
	for _, ev := range e.list() {
		if ev.ID == id {
			n++
		}
	}
	return n
}

func endpoints(nodes ...*node) []Endpoint {
	out := make([]Endpoint, len(nodes))
	for i, n := range nodes {
		out[i] = n.Responder
	}
	return out
}

func states(c *Client) map[State]int {
	out := map[State]int{}
	for _, s := range c.Status() {
		out[s.State]++
	}
	return out
}

func allIn(c *Client, st State) func() bool {
	return func() bool { return states(c)[st] == len(c.Status()) }
}

func TestClientRegistersAndReleasesEveryAddress(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	n10 := newNode(t, "192.0.2.10", filesrv00, filesrv20)
	n11 := newNode(t, "192.0.2.11", filesrv00, filesrv20)
	var ev events
	c := NewClient(ClientConfig{
		Servers:   []netip.AddrPort{wins.AddrPort()},
		Endpoints: endpoints(n10, n11),
		Names:     []nbns.Name{filesrv00, filesrv20},
		NodeType:  nbns.HNode,
		OnEvent:   ev.add,
	})
	stop := run(t, c.Run)
	eventually(t, "every name registered from both addresses", allIn(c, StateRegistered))
	for _, n := range []nbns.Name{filesrv00, filesrv20} {
		if got, want := wins.Lookup(n), []netip.Addr{vip10, vip11}; !slices.Equal(got, want) {
			t.Errorf("WINS holds %v for %v, want %v", got, n, want)
		}
	}
	for _, s := range c.Status() {
		if s.TTL != 60 {
			t.Errorf("%v for %v: granted TTL %d, want the server's 60", s.Name, s.Addr, s.TTL)
		}
	}
	// The second address was added after the server challenged the first one.
	if got := n10.Stats().NameQueries; got < 2 {
		t.Errorf("first address answered %d challenge queries, want one per name (2)", got)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, n := range []nbns.Name{filesrv00, filesrv20} {
		if got := wins.Lookup(n); got != nil {
			t.Errorf("after Run returned, WINS still holds %v for %v", got, n)
		}
	}
	if got := states(c); got[StateReleased] != 4 {
		t.Errorf("states after release = %v, want 4 released", got)
	}
	ops := strings.Join(wins.Ops(), "\n")
	for _, want := range []string{"add FILESRV<20> 192.0.2.10 192.0.2.11", "delete FILESRV<20> 192.0.2.10 192.0.2.11"} {
		if !strings.Contains(ops, want) {
			t.Errorf("WINS log lacks %q:\n%s", want, ops)
		}
	}
	if got := ev.list(); len(got) != 0 {
		t.Errorf("events = %v, want none", got)
	}
}

// TestClientChallengeNeedsResponder shows why the responder must answer before the
// client registers: the server challenges the first address when the second one
// registers, and refuses the second if nobody answers.
func TestClientChallengeNeedsResponder(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60, ChallengeTimeout: 100 * time.Millisecond})
	n10 := newNode(t, "192.0.2.10", filesrv20)
	n11 := newNode(t, "192.0.2.11", filesrv20)
	// The first address holds the name, but its responder is not running.
	if err := n10.stop(); err != nil {
		t.Fatal(err)
	}
	wins.Register(filesrv20, vip10, addrPort(n10.conn), 60)
	var ev events
	c := NewClient(ClientConfig{
		Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n11), Names: []nbns.Name{filesrv20},
		OnEvent: ev.add, BackoffMin: time.Hour,
	})
	run(t, c.Run)
	eventually(t, "a refusal event", func() bool { return ev.count(EventWINSFailed) == 1 })
	got := ev.list()[0]
	if got.Addr != vip11 || got.RCode != nbns.RCodeRefused || !strings.Contains(got.String(), "refused FILESRV<20> for 192.0.2.11 with RFS_ERR") {
		t.Errorf("event = %+v (%s), want RFS_ERR for 192.0.2.11", got, got)
	}
}

func TestClientUnreachableServerBacksOffAndRecovers(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	wins.SetDrop(true)
	n10 := newNode(t, "192.0.2.10", filesrv20)
	clock := newFakeClock()
	var ev events
	c := NewClient(ClientConfig{
		Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10), Names: []nbns.Name{filesrv00, filesrv20},
		OnEvent: ev.add, Clock: clock, Timeout: time.Second, Retries: 2, BackoffMin: 10 * time.Second, BackoffMax: 40 * time.Second,
		ReleaseTimeout: time.Second,
	})
	stop := run(t, c.Run)
	// Two names, each sent twice (1 s apart) without an answer.
	for i := 0; i < 2; i++ {
		eventually(t, "both names waiting for an answer", func() bool { return clock.Waiting(time.Second) == 2 })
		clock.Advance(time.Second)
	}
	eventually(t, "event 1078", func() bool { return ev.count(EventWINSFailed) >= 1 })
	eventually(t, "both names failed", allIn(c, StateFailed))
	if got := ev.count(EventWINSFailed); got != 1 {
		t.Errorf("%d unreachable events for one outage of one server, want 1", got)
	}
	if e := ev.list()[0]; e.Tries != 2 || !strings.Contains(e.String(), "did not answer 2 requests") {
		t.Errorf("event = %s, want 2 tries named", e)
	}
	// Backoff: 10 s after the failure, the next attempt (4 tries in all per name).
	// One timer per client, not per name: both names are due at the same time.
	eventually(t, "retry timer at the backoff", func() bool { return clock.Waiting(10*time.Second) == 1 })
	before := wins.Requests()
	clock.Advance(9 * time.Second)
	time.Sleep(20 * time.Millisecond) // nothing may be sent before the backoff ends
	if got := wins.Requests(); got != before {
		t.Fatalf("%d requests sent before the backoff ended", got-before)
	}
	wins.SetDrop(false)
	clock.Advance(time.Second)
	eventually(t, "registered once the server answers", allIn(c, StateRegistered))
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := wins.Lookup(filesrv20); got != nil {
		t.Errorf("not released: WINS holds %v", got)
	}
}

func TestClientRefreshesAtHalfTTL(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	n10 := newNode(t, "192.0.2.10", filesrv20)
	clock := newFakeClock()
	c := NewClient(ClientConfig{
		Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10), Names: []nbns.Name{filesrv20},
		Clock: clock, VerifyInterval: -1, RefreshSpread: -1,
	})
	run(t, c.Run)
	eventually(t, "registered", allIn(c, StateRegistered))
	eventually(t, "waiting for the refresh", func() bool { return clock.Waiting(30*time.Second) == 1 })
	if got := clock.Waiting(31 * time.Second); got != 0 {
		t.Fatalf("refresh timer is later than half the granted TTL (30 s)")
	}
	clock.Advance(30 * time.Second)
	eventually(t, "a refresh on the server", func() bool { return slices.Contains(wins.Ops(), "refresh FILESRV<20> 192.0.2.10") })
	if got := c.Status()[0]; got.State != StateRegistered || !got.Expires.Equal(clock.Now().Add(60*time.Second)) {
		t.Errorf("after refresh: %+v, want registered until now+60s", got)
	}
}

// TestClientRegistersAgainWhenRecordDropped: another holder's release drops the
// whole record on Samba; the refresh (NAM_ERR/RFS_ERR) or verification finds out.
func TestClientRegistersAgainWhenRecordDropped(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	n10 := newNode(t, "192.0.2.10", filesrv20)
	n11 := newNode(t, "192.0.2.11", filesrv20)
	clock := newFakeClock()
	// Two clients, as on two nodes: each registers its own address.
	var ev events
	peers := func(nbns.Name) []netip.Addr { return []netip.Addr{vip10, vip11} }
	a := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10), Names: []nbns.Name{filesrv20}, Clock: clock, VerifyInterval: 10 * time.Second, Peers: peers, OnEvent: ev.add})
	b := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n11), Names: []nbns.Name{filesrv20}, Clock: clock, VerifyInterval: 10 * time.Second, Peers: peers, OnEvent: ev.add})
	run(t, a.Run)
	eventually(t, "a registered", allIn(a, StateRegistered))
	stopB := run(t, b.Run)
	eventually(t, "b registered", allIn(b, StateRegistered))
	if got := wins.Lookup(filesrv20); len(got) != 2 {
		t.Fatalf("WINS holds %v, want both addresses", got)
	}
	// b goes offline: its release drops the record, then it registers a's address again.
	if err := stopB(); err != nil {
		t.Fatal(err)
	}
	if got, want := wins.Lookup(filesrv20), []netip.Addr{vip10}; !slices.Equal(got, want) {
		t.Errorf("after b's release WINS holds %v, want %v (the survivor registered again)", got, want)
	}
	// Without that help, a's verification restores it: drop the record by hand.
	wins.Register(other20, vip11, addrPort(n11.conn), 60) // unrelated record
	relOnly := nbns.NewRelease(1, filesrv20, nbns.NBEntry{Addr: vip10}, false)
	if got := exchange(t, listen(t), wins.AddrPort(), relOnly, 2*time.Second); got == nil || got.RCode != nbns.RCodeOK {
		t.Fatalf("manual release: %v", got)
	}
	eventually(t, "verify timer", func() bool { return clock.Waiting(10*time.Second) >= 1 })
	clock.Advance(10 * time.Second)
	eventually(t, "a registered again after verification", func() bool { return slices.Equal(wins.Lookup(filesrv20), []netip.Addr{vip10}) })
	if got := ev.list(); len(got) != 0 {
		t.Errorf("events %v, want none: the other address is a peer", got)
	}
}

// TestClientSecondParty: someone outside the cluster registers our name. With a
// unique registration the server challenges us and refuses them (defended); with a
// multi-homed one Samba adds them next to us (a conflict naming their address).
func TestClientSecondParty(t *testing.T) {
	stranger := netip.MustParseAddr("192.0.2.99")
	for _, tt := range []struct {
		name     string
		req      *nbns.Message
		rcode    nbns.RCode
		defended bool
	}{
		{"unique registration", nbns.NewRegistration(1, filesrv20, 300, nbns.NBEntry{Addr: stranger}, false), nbns.RCodeActive, true},
		{"multi-homed registration", nbns.NewMultiHomedRegistration(1, filesrv20, 300, nbns.NBEntry{Addr: stranger}), nbns.RCodeOK, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
			n10 := newNode(t, "192.0.2.10", filesrv20)
			var ev events
			c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10), Names: []nbns.Name{filesrv20},
				OnEvent: ev.add, ChallengeCheck: 20 * time.Millisecond})
			run(t, c.Run)
			eventually(t, "registered", allIn(c, StateRegistered))
			sock := listen(t)
			got := exchange(t, sock, wins.AddrPort(), tt.req, 2*time.Second)
			if got == nil || got.Opcode != nbns.OpWACK {
				t.Fatalf("second party got %v, want a WACK first", got)
			}
			if got = receive(t, sock, 2*time.Second); got == nil || got.RCode != tt.rcode {
				t.Fatalf("second party got %v, want %v", got, tt.rcode)
			}
			eventually(t, "event 4320", func() bool { return ev.count(EventNameConflict) == 1 })
			e := ev.list()[0]
			switch {
			case tt.defended && (!e.Defended || !strings.Contains(e.String(), "kept the name here")):
				t.Errorf("event %s, want a defended name", e)
			case !tt.defended && (e.Defended || !slices.Equal(e.Other, []netip.Addr{stranger})):
				t.Errorf("event %s, want a conflict with %v", e, stranger)
			}
			wantState := StateRegistered
			if !tt.defended {
				wantState = StateConflict
			}
			if got := c.Status()[0].State; got != wantState {
				t.Errorf("state %v, want %v", got, wantState)
			}
		})
	}
}

func TestClientConflict(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	n10 := newNode(t, "192.0.2.10", filesrv20)
	wins.Refuse(filesrv20, nbns.RCodeActive)
	wins.Register(filesrv20, netip.MustParseAddr("192.0.2.99"), netip.MustParseAddrPort("127.0.0.1:9"), 60)
	var ev events
	c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10), Names: []nbns.Name{filesrv20}, OnEvent: ev.add})
	run(t, c.Run)
	eventually(t, "conflict event", func() bool { return ev.count(EventNameConflict) == 1 })
	e := ev.list()[0]
	if !slices.Equal(e.Other, []netip.Addr{netip.MustParseAddr("192.0.2.99")}) || e.Addr != vip10 {
		t.Errorf("conflict event %+v, want other party 192.0.2.99 (asked of the server) and our 192.0.2.10", e)
	}
	if !strings.Contains(e.String(), "in conflict with 192.0.2.99") || !strings.Contains(e.String(), "event 4320") {
		t.Errorf("message %q does not name the other party and the event id", e)
	}
	if got := c.Status()[0].State; got != StateConflict {
		t.Errorf("state %v, want conflict", got)
	}
	// The responder now answers the name negatively.
	got := exchange(t, listen(t), addrPort(n10.conn), nbns.NewNameQuery(5, filesrv20, 0), 2*time.Second)
	if got == nil || got.RCode != nbns.RCodeName {
		t.Errorf("query for a name in conflict answered %v, want NAM_ERR", got)
	}
}

func TestClientConflictDemand(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	n10 := newNode(t, "192.0.2.10", filesrv20)
	var ev events
	c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10), Names: []nbns.Name{filesrv20}, OnEvent: ev.add})
	stop := run(t, c.Run)
	eventually(t, "registered", allIn(c, StateRegistered))
	demand := nbns.NewConflictDemand(0x7777, filesrv20, nbns.NBEntry{Flags: nbns.MakeNBFlags(nbns.HNode, false), Addr: vip10})
	if err := wins.Send(demand, addrPort(n10.conn)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "conflict event", func() bool { return ev.count(EventNameConflict) == 1 })
	if e := ev.list()[0]; e.From != wins.AddrPort() || !strings.Contains(e.String(), "sent a name conflict demand") {
		t.Errorf("event %s, want the demand's sender named", e)
	}
	if got := exchange(t, listen(t), addrPort(n10.conn), nbns.NewNameQuery(5, filesrv20, 0), 2*time.Second); got == nil || got.RCode != nbns.RCodeName {
		t.Errorf("query for a name in conflict answered %v, want NAM_ERR", got)
	}
	// A name in conflict is not ours on the server: it is not released.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if got := wins.Lookup(filesrv20); !slices.Equal(got, []netip.Addr{vip10}) {
		t.Errorf("WINS holds %v, want the record left alone", got)
	}
}

func TestClientReleaseWithDeadServerIsBounded(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	nodes := []*node{newNode(t, "192.0.2.10", filesrv00, filesrv20), newNode(t, "192.0.2.11", filesrv00, filesrv20)}
	c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(nodes...), Names: []nbns.Name{filesrv00, filesrv20},
		Timeout: 50 * time.Millisecond, ReleaseTimeout: 300 * time.Millisecond})
	stop := run(t, c.Run)
	eventually(t, "registered", allIn(c, StateRegistered))
	wins.SetDrop(true)
	start := time.Now()
	err := stop()
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("detach with a dead WINS server took %v, want about the release timeout (300 ms)", took)
	}
	if !errors.Is(err, errNoAnswer) || !strings.Contains(err.Error(), "stays registered there until its TTL ends") {
		t.Errorf("Run = %v, want unanswered releases", err)
	}
	if n := strings.Count(err.Error(), "release "); n != 4 {
		t.Errorf("Run reported %d failed releases, want 4 (2 names x 2 addresses):\n%v", n, err)
	}
}

func TestClientManyAddresses(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	var nodes []*node
	var names []nbns.Name
	for i := 0; i < 50; i++ {
		n := nbns.Name{Label: fmt.Sprintf("SRV%03d", i), Suffix: 0x20}
		names = append(names, n)
		nodes = append(nodes, newNode(t, fmt.Sprintf("192.0.2.%d", 100+i), n))
	}
	// One client per address, as each resource has its own names.
	var clients []*Client
	for i, n := range nodes {
		c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n), Names: names[i : i+1]})
		clients = append(clients, c)
		run(t, c.Run)
	}
	for _, c := range clients {
		eventually(t, "registered", allIn(c, StateRegistered))
	}
	for i, n := range names {
		if got := wins.Lookup(n); len(got) != 1 || got[0] != nodes[i].Addr() {
			t.Errorf("%v: WINS holds %v, want %v", n, got, nodes[i].Addr())
		}
	}
}

// TestSharedReportsOutageOnce: clients sharing a Shared (one per node) report one
// WINS outage once, not once per address.
func TestSharedReportsOutageOnce(t *testing.T) {
	wins := newWINS(t, winstest.Config{})
	wins.SetDrop(true)
	shared := NewShared(0)
	var ev events
	for _, a := range []string{"192.0.2.10", "192.0.2.11", "192.0.2.12"} {
		n := newNode(t, a, filesrv20)
		c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n), Names: []nbns.Name{filesrv20},
			Shared: shared, OnEvent: ev.add, Timeout: 20 * time.Millisecond, Retries: 1, BackoffMin: time.Hour, ReleaseTimeout: 50 * time.Millisecond})
		stop := run(t, c.Run)
		t.Cleanup(func() { stop() }) // releases fail: the server is gone
		eventually(t, "failed", allIn(c, StateFailed))
	}
	if got := ev.count(EventWINSFailed); got != 1 {
		t.Errorf("%d outage events from 3 clients sharing one Shared, want 1", got)
	}
}

// TestNoGoroutineLeak: after Run returns and the responders stop, nothing is left.
func TestNoGoroutineLeak(t *testing.T) {
	wins := newWINS(t, winstest.Config{MinTTL: 60, MaxTTL: 60})
	before := runtime.NumGoroutine()
	n10 := newNode(t, "192.0.2.10", filesrv00, filesrv20)
	n11 := newNode(t, "192.0.2.11", filesrv00, filesrv20)
	c := NewClient(ClientConfig{Servers: []netip.AddrPort{wins.AddrPort()}, Endpoints: endpoints(n10, n11), Names: []nbns.Name{filesrv00, filesrv20}})
	stop := run(t, c.Run)
	eventually(t, "registered", allIn(c, StateRegistered))
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{n10, n11} {
		if err := n.stop(); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, fmt.Sprintf("goroutines back to %d", before), func() bool { return runtime.NumGoroutine() <= before })
}
