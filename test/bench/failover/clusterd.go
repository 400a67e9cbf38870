package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// resourceName is the benchmark's one resource.
const resourceName = "web"

// clusterdProfiles maps the benchmark's profile names to the agents' `profile` key
// ("" leaves clusterd's default).
var clusterdProfiles = map[string]string{"default": "", "fast": "fast", "relaxed": "relaxed"}

// clusterdSystem runs real clusterd agents (test/cluster) on every node: n1
// bootstraps, n2 and n3 join, and one resource holds the address.
type clusterdSystem struct {
	c      *cluster.Cluster
	opts   cluster.Options
	vip    netip.Prefix
	holder string // "leader" or "follower": where the address sits before the fault
}

func newClusterd(l *lab.Lab, bin, dir, profile, holder string, vip netip.Prefix) (*clusterdSystem, error) {
	p, ok := clusterdProfiles[profile]
	if !ok {
		return nil, fmt.Errorf("%w: clusterd has no profile %q", errNoProfile, profile)
	}
	return &clusterdSystem{c: cluster.New(l, bin, dir), opts: cluster.Options{Profile: p}, vip: vip, holder: holder}, nil
}

func (s *clusterdSystem) agent(i int) *cluster.Agent { return s.c.Agent(i, s.opts) }

func (s *clusterdSystem) start(ctx context.Context) error {
	if err := s.c.Bootstrap(ctx, len(s.c.Lab.Nodes()), s.opts); err != nil {
		return err
	}
	if _, err := s.c.CLI(ctx, s.agent(1), "resource", "add", resourceName, "--address", s.vip.String(), "--interface", "eth0"); err != nil {
		return err
	}
	return s.placeHolder(ctx)
}

// placeHolder moves the resource so that its holder is (leader) or is not (follower)
// the raft leader: when the leader dies, an election comes before the failover.
func (s *clusterdSystem) placeHolder(ctx context.Context) error {
	st, err := s.c.WaitStatus(ctx, s.agent(1), 20*time.Second, func(st api.Status) bool {
		return st.Leader != "" && cluster.Owners(st)[resourceName] != ""
	})
	if err != nil {
		return fmt.Errorf("%s online with a leader: %w", resourceName, err)
	}
	owner := cluster.Owners(st)[resourceName]
	to := ""
	switch {
	case s.holder == "leader" && owner != st.Leader:
		to = st.Leader
	case s.holder == "follower" && owner == st.Leader:
		for _, n := range st.Nodes {
			if n.ID != st.Leader && n.State == "up" {
				to = n.ID
				break
			}
		}
	}
	if to == "" {
		return nil
	}
	if out, err := s.c.CLI(ctx, s.agent(1), "move", resourceName, "--to", to, "--wait", "--timeout", "10s"); err != nil {
		return fmt.Errorf("move %s to %s (holder %s): %w\n%s", resourceName, to, s.holder, err, out)
	}
	return nil
}

// leader returns the raft leader's node id as the live agents see it.
func (s *clusterdSystem) leader(ctx context.Context) string {
	for i := range s.c.Lab.Nodes() {
		a := s.agent(i + 1)
		if a.Proc() == nil {
			continue
		}
		cl := s.c.Client(a)
		cl.HTTP.Timeout = time.Second
		if st, err := cl.Status(ctx); err == nil && st.Leader != "" {
			return st.Leader
		}
	}
	return ""
}

func (s *clusterdSystem) restart(ctx context.Context, i int) error {
	return s.c.Restart(ctx, s.agent(i))
}

// signal signals node i's agent process only: a fencing companion must survive.
func (s *clusterdSystem) signal(i int, sig syscall.Signal) error { return s.c.Signal(s.agent(i), sig) }

// move runs `clusterd move web --to nTO --wait` against a node that does not hold it.
func (s *clusterdSystem) move(ctx context.Context, from, to int) error {
	out, err := s.c.CLI(ctx, s.agent(to), "move", resourceName, "--to", fmt.Sprintf("n%d", to), "--wait", "--timeout", "10s")
	if err != nil {
		return fmt.Errorf("%w\n%s", err, out)
	}
	return nil
}

// owner asks the live agents in turn who holds the resource.
func (s *clusterdSystem) owner(ctx context.Context, _ *cluster.Recorder, _ netip.Addr) (string, error) {
	var errs []error
	for i := range s.c.Lab.Nodes() {
		a := s.agent(i + 1)
		if a.Proc() == nil {
			continue
		}
		cl := s.c.Client(a)
		cl.HTTP.Timeout = 2 * time.Second
		st, err := cl.Status(ctx)
		if err != nil {
			errs = append(errs, fmt.Errorf("status from %s: %w", a.ID, err))
			continue
		}
		for _, r := range st.Resources {
			if r.Name == resourceName && r.State == api.StateOnline {
				return r.Owner, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s says %s is not online on any node", a.ID, resourceName))
	}
	return "", errors.Join(errs...)
}
