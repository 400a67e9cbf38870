package cluster

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/lab"
)

// Demo is the README's main command: a three-node cluster in a lab with one cluster
// address; the client reaches it, it moves gracefully, its holder dies (agent killed,
// link down), and it answers from a survivor. Each step is printed with its timing.
func Demo(ctx context.Context, bin string, out io.Writer) (err error) {
	start := time.Now()
	step := func(format string, args ...any) {
		fmt.Fprintf(out, "[%7.3fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	l, err := lab.Create(ctx, lab.Options{Nodes: 3, Client: true})
	if err != nil {
		return err
	}
	defer func() {
		cerr := l.Close()
		step("lab %s removed (namespaces, veths, processes)", l.ID())
		if err == nil {
			err = cerr
		}
	}()
	step("lab %s up: switch, nodes n1-n3 (198.18.0.101-103), client 198.18.0.2", l.ID())
	dir, err := os.MkdirTemp("", "clusterd-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c := New(l, bin, dir)
	t0 := time.Now()
	if err := c.Bootstrap(ctx, 3, Options{}); err != nil {
		return err
	}
	n1 := c.Agent(1, Options{})
	step("3 agents running: n1 bootstrapped, n2 and n3 joined (%s)", ms(time.Since(t0)))

	vip := netip.MustParseAddr("198.18.1.10")
	t0 = time.Now()
	if _, err := c.CLI(ctx, n1, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0"); err != nil {
		return err
	}
	holder, err := c.WaitHolder(vip, 10*time.Second, nil)
	if err != nil {
		return err
	}
	step("resource web (198.18.1.10/16 on eth0) online on %s (%s after `resource add`)", holder.Name, ms(time.Since(t0)))
	if err := Ping(ctx, l.Client(), vip); err != nil {
		return err
	}
	step("client pings 198.18.1.10: reply")
	status, _ := c.CLI(ctx, n1, "status")
	fmt.Fprintf(out, "\n%s\n", status)

	prober, err := NewProber(l.Client(), vip, 5*time.Millisecond)
	if err != nil {
		return err
	}
	pctx, stopProbe := context.WithCancel(ctx)
	defer stopProbe()
	go prober.Run(pctx)
	time.Sleep(100 * time.Millisecond)

	st, err := c.Client(n1).Status(ctx)
	if err != nil {
		return err
	}
	from := Owners(st)["web"]
	to := "n1"
	if from == "n1" {
		to = "n2"
	}
	t0 = time.Now()
	moveOut, err := c.CLI(ctx, n1, "move", "web", "--to", to, "--wait")
	if err != nil {
		return err
	}
	fmt.Fprint(out, moveOut)
	toHost := c.Agent(nodeIndex(to), Options{}).Host
	if _, err := c.WaitHolder(vip, 5*time.Second, nil); err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	outage, _ := Outage(prober.Replies(), t0, toHost.MAC.String())
	step("moved web %s -> %s gracefully: client-observed outage %s", from, to, ms(outage))

	victim := c.Agent(nodeIndex(to), Options{})
	t0 = time.Now()
	if err := c.Kill(victim); err != nil {
		return err
	}
	if err := victim.Host.LinkDown(); err != nil {
		return err
	}
	step("host death of %s: agent killed with SIGKILL, its link down", to)
	newHolder, err := c.WaitHolder(vip, 10*time.Second, victim.Host)
	if err != nil {
		return err
	}
	time.Sleep(100 * time.Millisecond)
	outage, _ = Outage(prober.Replies(), t0, newHolder.MAC.String())
	step("web answers from %s: client-observed outage %s", newHolder.Name, ms(outage))
	if err := Ping(ctx, l.Client(), vip); err != nil {
		return err
	}
	step("client pings 198.18.1.10: reply (two holders seen by the prober: %d rounds)", DoubleRounds(prober.Replies()))
	survivor := n1
	if victim == n1 {
		survivor = c.Agent(2, Options{})
	}
	if _, err := c.WaitStatus(ctx, survivor, 5*time.Second, func(st api.Status) bool { return len(st.Nodes) == 3 }); err == nil {
		status, _ = c.CLI(ctx, survivor, "status")
		fmt.Fprintf(out, "\n%s\n", status)
	}
	return nil
}

func nodeIndex(id string) int {
	var i int
	fmt.Sscanf(id, "n%d", &i)
	return i
}

func ms(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }
