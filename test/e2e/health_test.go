package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// service is a TCP listener on 127.0.0.1:8080 inside a node's namespace.
type service struct{ ln net.Listener }

func startService(t *testing.T, h *lab.Host) *service {
	t.Helper()
	s := &service{}
	if err := h.Do(func() error {
		var err error
		s.ln, err = net.Listen("tcp", "127.0.0.1:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := s.ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() { s.ln.Close() })
	return s
}

func (s *service) stop() { s.ln.Close() }

func owner(t *testing.T, c *cluster.Cluster, via *cluster.Agent, name string) string {
	t.Helper()
	st, err := c.Client(via).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return cluster.Owners(st)[name]
}

// TestHealthCheckMovesAndFlapLimit: a TCP check on a service in the holder's
// namespace; stopping the service moves the resource; with failback "never" it does
// not come back when the service returns; after three health moves the fourth is
// refused with event 1254 and the resource stays (failed).
func TestHealthCheckMovesAndFlapLimit(t *testing.T) {
	ctx := context.Background()
	c := three(t)
	n1 := c.Agent(1, cluster.Options{})
	svcs := map[string]*service{}
	for i := 1; i <= 3; i++ {
		a := c.Agent(i, cluster.Options{})
		svcs[a.ID] = startService(t, a.Host)
	}
	if _, err := c.CLI(ctx, n1, "resource", "add", "web", "--address", "198.18.1.10/16", "--interface", "eth0",
		"--check", "tcp:127.0.0.1:8080,interval=200ms,fall=2,rise=1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitStatus(ctx, n1, 10*time.Second, func(st api.Status) bool { return cluster.Owners(st)["web"] != "" }); err != nil {
		t.Fatal(err)
	}
	var moved []string
	for round := 1; round <= 4; round++ {
		from := owner(t, c, n1, "web")
		svcs[from].stop()
		start := time.Now()
		st, err := c.WaitStatus(ctx, n1, 5*time.Second, func(st api.Status) bool {
			o := cluster.Owners(st)["web"]
			return o != "" && o != from
		})
		if round <= 3 {
			if err != nil {
				t.Fatalf("round %d: web did not move off %s after its service stopped: %v (%+v)", round, from, err, st.Resources)
			}
			to := cluster.Owners(st)["web"]
			moved = append(moved, from+"->"+to)
			t.Logf("round %d: service stopped on %s, web online on %s after %s", round, from, to, time.Since(start))
			// The service comes back on the old node: with failback never, web stays.
			svcs[from] = startService(t, c.Agent(nodeIndex(from), cluster.Options{}).Host)
			time.Sleep(600 * time.Millisecond)
			if o := owner(t, c, n1, "web"); o != to {
				t.Fatalf("round %d: web moved back to %s after the service returned (failback never)", round, o)
			}
			continue
		}
		// Fourth failure within the period: refused, web stays where it is, failed.
		if err == nil {
			t.Fatalf("round 4: web moved again (%v) beyond the failover limit; moves so far %v", cluster.Owners(st)["web"], moved)
		}
		out, _ := c.CLI(ctx, n1, "events")
		if !strings.Contains(out, "1254") {
			t.Fatalf("no event 1254 after the fourth health failure:\n%s", out)
		}
		st, _ = c.Client(n1).Status(ctx)
		for _, r := range st.Resources {
			if r.Name == "web" && (r.State != api.StateFailed || !strings.Contains(r.Reason, "health check")) {
				t.Errorf("web after the limit: state %s, reason %q; want failed with the check named", r.State, r.Reason)
			}
		}
	}
}
