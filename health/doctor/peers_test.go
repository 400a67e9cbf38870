package doctor

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

func TestPeerFinding(t *testing.T) {
	refused := errors.New("connect: connection refused")
	tests := []struct {
		name     string
		ep       Endpoint
		err      error
		want     Severity
		wantText string
	}{
		{"reachable", Endpoint{Node: "n2", Kind: "raft", Addr: "192.0.2.2:7401", State: "up"}, nil, OK, "reachable"},
		{"raft of an up node", Endpoint{Node: "n2", Kind: "raft", Addr: "192.0.2.2:7401", State: "up"}, refused, Fail, "allow TCP 7401 (raft) and UDP 7402 (leases) from this node to 192.0.2.2"},
		{"api of a follower", Endpoint{Node: "n2", Kind: "api", Addr: "192.0.2.2:7400", State: "up"}, refused, Warn, "allow TCP 7400 from this node"},
		{"api of the leader", Endpoint{Node: "n1", Kind: "api", Addr: "192.0.2.1:7400", State: "up", Leader: true}, refused, Fail, "cut off"},
		{"down node", Endpoint{Node: "n3", Kind: "raft", Addr: "192.0.2.3:7401", State: "down"}, refused, Warn, "clusterd leave n3"},
		{"draining node", Endpoint{Node: "n3", Kind: "raft", Addr: "192.0.2.3:7401", State: "draining"}, refused, Fail, "sees n3 draining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := peerFinding(tt.ep, tt.err)
			if f.Severity != tt.want || !strings.Contains(f.Message+" | "+f.Fix, tt.wantText) {
				t.Errorf("peerFinding(%+v, %v) = %v %q (fix %q); want %v containing %q", tt.ep, tt.err, f.Severity, f.Message, f.Fix, tt.want, tt.wantText)
			}
		})
	}
}

// TestPeersDialsEveryEndpoint checks that Peers dials each endpoint once, within
// the timeout, and keeps the findings in the endpoints' order.
func TestPeersDialsEveryEndpoint(t *testing.T) {
	eps := []Endpoint{
		{Node: "n1", Kind: "raft", Addr: "192.0.2.1:7401", State: "up"},
		{Node: "n2", Kind: "raft", Addr: "192.0.2.2:7401", State: "up"},
		{Node: "n2", Kind: "api", Addr: "192.0.2.2:7400", State: "up"},
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Errorf("dial %s without a deadline", addr)
		}
		if addr == "192.0.2.2:7401" {
			<-ctx.Done() // a black hole: only the timeout ends it
			return nil, ctx.Err()
		}
		c1, c2 := net.Pipe()
		c2.Close()
		return c1, nil
	}
	start := time.Now()
	fs := Peers(context.Background(), eps, dial, 50*time.Millisecond)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Peers took %v with a 50ms timeout", d)
	}
	var got []string
	for _, f := range fs {
		got = append(got, f.Subject+"="+f.Severity.String())
	}
	want := "n1 raft=ok n2 raft=fail n2 api=ok"
	if strings.Join(got, " ") != want {
		t.Errorf("Peers = %v, want %s", got, want)
	}
}
