package netbios

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

var (
	filesrv00 = nbns.Name{Label: "FILESRV", Suffix: 0x00}
	filesrv20 = nbns.Name{Label: "FILESRV", Suffix: 0x20}
	other20   = nbns.Name{Label: "OTHER", Suffix: 0x20}
	vip10     = netip.MustParseAddr("192.0.2.10")
	vip11     = netip.MustParseAddr("192.0.2.11")
)

func TestResponderAnswers(t *testing.T) {
	n := newNode(t, "192.0.2.10", filesrv00, filesrv20)
	n.SetConflict(nbns.Name{Label: "FILESRV", Suffix: 0x00}, true)
	client := listen(t)
	to := addrPort(n.conn)
	h := nbns.MakeNBFlags(nbns.HNode, false)
	active := nbns.MakeNameFlags(nbns.HNode, nbns.NameActive)
	status := &nbns.NodeStatus{
		Names: []nbns.StatusName{
			{Label: "FILESRV", Suffix: 0x00, Flags: active | nbns.NameConflict},
			{Label: "FILESRV", Suffix: 0x20, Flags: active},
		},
		Statistics: nbns.Statistics{UnitID: [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}},
	}
	statusFor := func(n nbns.Name) *nbns.Message {
		m := nbns.NewNodeStatusRequest(0x99)
		m.Questions[0].Name = n
		return m
	}
	tests := []struct {
		name string
		req  *nbns.Message
		want *nbns.Message // nil: no answer
	}{
		{"owned name, WINS challenge (no RD)", nbns.NewNameQuery(1, filesrv20, 0),
			nbns.NewQueryResponse(nbns.NewNameQuery(1, filesrv20, 0), DefaultAnswerTTL, nbns.NBEntry{Flags: h, Addr: vip10})},
		{"owned name, broadcast", nbns.NewNameQuery(2, filesrv20, nbns.FlagB|nbns.FlagRD),
			nbns.NewQueryResponse(nbns.NewNameQuery(2, filesrv20, 0), DefaultAnswerTTL, nbns.NBEntry{Flags: h, Addr: vip10})},
		{"other name, unicast", nbns.NewNameQuery(4, other20, 0), nbns.NewNegativeQueryResponse(nbns.NewNameQuery(4, other20, 0), nbns.RCodeName)},
		{"other name, broadcast", nbns.NewNameQuery(5, other20, nbns.FlagB), nil},
		{"wrong scope", nbns.NewNameQuery(6, nbns.Name{Label: "FILESRV", Suffix: 0x20, Scope: "corp"}, 0),
			nbns.NewNegativeQueryResponse(nbns.NewNameQuery(6, nbns.Name{Label: "FILESRV", Suffix: 0x20, Scope: "corp"}, 0), nbns.RCodeName)},
		{"conflicted name, unicast", nbns.NewNameQuery(7, filesrv00, 0), nbns.NewNegativeQueryResponse(nbns.NewNameQuery(7, filesrv00, 0), nbns.RCodeName)},
		{"conflicted name, broadcast", nbns.NewNameQuery(8, filesrv00, nbns.FlagB), nil},
		{"node status *", nbns.NewNodeStatusRequest(9), nbns.NewNodeStatusResponse(nbns.NewNodeStatusRequest(9), status)},
		{"node status by name", statusFor(filesrv20), nbns.NewNodeStatusResponse(statusFor(filesrv20), status)},
		{"node status other name", statusFor(other20), nil},
		{"registration request", nbns.NewRegistration(10, filesrv20, 60, nbns.NBEntry{Flags: h, Addr: vip11}, false), nil},
		{"two questions", &nbns.Message{Header: nbns.Header{ID: 11}, Questions: []nbns.Question{{Name: filesrv20, Type: nbns.TypeNB, Class: nbns.ClassIN}, {Name: filesrv20, Type: nbns.TypeNB, Class: nbns.ClassIN}}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wait := 2 * time.Second
			if tt.want == nil {
				wait = 200 * time.Millisecond // a late answer would fail the next case on its id
			}
			got := exchange(t, client, to, tt.req, wait)
			if tt.want == nil {
				// Nothing may come back: the next answer must be the probe's.
				if got != nil {
					t.Fatalf("request %v: got answer %v, want none", tt.req, got)
				}
				return
			}
			if got == nil {
				t.Fatalf("request %v: no answer, want %v", tt.req, tt.want)
			}
			if got.String() != tt.want.String() {
				t.Errorf("request %v:\n got %v\nwant %v", tt.req, got, tt.want)
			}
		})
	}
	st := n.Stats()
	if st.NameQueries != 5 || st.StatusQueries != 2 || st.Ignored != 5 || st.Garbage != 0 {
		t.Errorf("stats = %+v, want 5 name queries, 2 status queries, 5 ignored, no garbage", st)
	}
}

// TestResponderNoAnswerIsSilent checks "no answer" cases the quick way the table
// cannot: a silent case followed by a query must yield the query's answer first.
func TestResponderNoAnswerIsSilent(t *testing.T) {
	n := newNode(t, "192.0.2.10", filesrv20)
	c := listen(t)
	for i, req := range []*nbns.Message{nbns.NewNameQuery(1, other20, nbns.FlagB), nbns.NewNodeStatusRequest(2)} {
		b, _ := req.AppendPack(nil)
		if _, err := c.WriteTo(b, udpAddr(addrPort(n.conn))); err != nil {
			t.Fatal(err)
		}
		_ = i
	}
	got := receive(t, c, time.Second)
	if got == nil || got.ID != 2 {
		t.Fatalf("first answer = %v, want the node status answer (id 2)", got)
	}
}

type logCapture struct {
	bytes.Buffer
}

func TestResponderGarbage(t *testing.T) {
	var logs logCapture
	conn := listen(t)
	clock := newFakeClock()
	r := NewResponder(ResponderConfig{
		Conn: conn, Addr: vip10, Names: []nbns.Name{filesrv20}, Clock: clock, LogEvery: time.Minute,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	stop := run(t, r.Run)
	c := listen(t)
	for i := 0; i < 50; i++ {
		payload := []byte(fmt.Sprintf("garbage %d", i))
		if i%2 == 1 {
			payload = []byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 0x20, 0, 1} // pointer loop
		}
		if _, err := c.WriteTo(payload, udpAddr(addrPort(conn))); err != nil {
			t.Fatal(err)
		}
	}
	if got := exchange(t, c, addrPort(conn), nbns.NewNameQuery(7, filesrv20, 0), time.Second); got == nil || got.ID != 7 || got.RCode != nbns.RCodeOK {
		t.Fatalf("after garbage, a name query got %v, want a positive answer with id 7", got)
	}
	if got := r.Stats().Garbage; got != 50 {
		t.Errorf("garbage counter = %d, want 50", got)
	}
	clock.Advance(time.Minute)
	if _, err := c.WriteTo([]byte("late"), udpAddr(addrPort(conn))); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the 51st garbage packet", func() bool { return r.Stats().Garbage == 51 })
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	lines := strings.Count(logs.String(), "ignoring undecodable NetBIOS packets")
	if lines != 2 {
		t.Errorf("logged %d lines about garbage, want 2 (one per minute):\n%s", lines, logs.String())
	}
	if !strings.Contains(logs.String(), "count=50") {
		t.Errorf("second log line does not count the 50 packets since the first:\n%s", logs.String())
	}
}

func TestResponderPassesResponses(t *testing.T) {
	n := newNode(t, "192.0.2.10", filesrv20)
	c := listen(t)
	resp := nbns.NewRegistrationResponse(nbns.NewMultiHomedRegistration(0x4242, filesrv20, 60, nbns.NBEntry{Addr: vip10}), nbns.RCodeOK, 60)
	if got := exchange(t, c, addrPort(n.conn), resp, 100*time.Millisecond); got != nil {
		t.Fatalf("a response was answered with %v", got)
	}
	select {
	case p := <-n.Received():
		if p.Msg.ID != 0x4242 || p.From != addrPort(c) {
			t.Errorf("Responses delivered %v from %v, want id 0x4242 from %v", p.Msg, p.From, addrPort(c))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("response not delivered on Received()")
	}
}

func TestResponderStops(t *testing.T) {
	conn := listen(t)
	r := NewResponder(ResponderConfig{Conn: conn, Addr: vip10})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run with a cancelled context = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context was cancelled")
	}
}
