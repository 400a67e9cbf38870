package doctor

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// Endpoint is a TCP address of another node that this node must reach.
type Endpoint struct {
	Node   string
	Kind   string // "raft" or "api"
	Addr   string // HOST:PORT
	State  string // the node's state as the cluster sees it: up, draining, down
	Leader bool
}

// DialFunc opens a connection; net.Dialer.DialContext is one.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Peers connects to every endpoint over TCP (concurrently, each within timeout) and
// reports which this node cannot reach. dial nil means a net.Dialer.
func Peers(ctx context.Context, eps []Endpoint, dial DialFunc, timeout time.Duration) []Finding {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	errs := make([]error, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			c, err := dial(ctx, "tcp", ep.Addr)
			if err == nil {
				c.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	out := make([]Finding, len(eps))
	for i, ep := range eps {
		out[i] = peerFinding(ep, errs[i])
	}
	return out
}

// peerFinding judges one connect: a node the cluster sees down may be unreachable;
// one it sees up must not be, or this node is cut off from it (raft always, the API
// when it is the leader's: writes are forwarded there).
func peerFinding(ep Endpoint, err error) Finding {
	f := Finding{Check: "peer", Subject: ep.Node + " " + ep.Kind}
	what := fmt.Sprintf("node %s %s %s", ep.Node, ep.Kind, ep.Addr)
	if err == nil {
		f.Severity, f.Message = OK, what+" reachable (TCP)"
		return f
	}
	ports := "TCP " + portOf(ep.Addr)
	if ep.Kind == "raft" {
		ports += " (raft) and UDP " + leasePort(ep.Addr) + " (leases)"
	}
	if ep.State == "down" {
		f.Severity = Warn
		f.Message = fmt.Sprintf("%s unreachable: %v (the cluster sees %s down too)", what, err, ep.Node)
		f.Fix = fmt.Sprintf("start or repair %s, or remove it for good with `clusterd leave %s`", ep.Node, ep.Node)
		return f
	}
	f.Severity = Fail
	if ep.Kind == "api" && !ep.Leader {
		f.Severity = Warn
	}
	f.Message = fmt.Sprintf("%s unreachable from here: %v; the cluster sees %s %s, so this node is cut off from it", what, err, ep.Node, ep.State)
	f.Fix = fmt.Sprintf("allow %s from this node to %s (firewall, routing), and check the agent there", ports, hostOf(ep.Addr))
	return f
}

func hostOf(hp string) string {
	h, _, err := net.SplitHostPort(hp)
	if err != nil {
		return hp
	}
	return h
}

func portOf(hp string) string {
	_, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "?"
	}
	return p
}

// leasePort is the UDP port of the lease protocol: the raft port + 1. A TCP connect
// cannot test it, so doctor only names it.
func leasePort(raftAddr string) string {
	p, err := strconv.Atoi(portOf(raftAddr))
	if err != nil {
		return "?"
	}
	return strconv.Itoa(p + 1)
}
