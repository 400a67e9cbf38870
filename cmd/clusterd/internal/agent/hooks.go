package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/resource/hooks"
)

// Lifecycle hooks: a resource's online hook runs after its address and NetBIOS
// interface are up (a failure fails the resource over, like a failed health check),
// its offline hook before they go, its failed hook after it failed. Each run is a
// goroutine tracked by hookRuns, so 1,000 resources never wait on each other.

type hookRuns struct{ wg sync.WaitGroup }

func (a *Agent) hookFor(r consensus.Resource, ev hooks.Event) (hooks.Hook, bool) {
	if r.Hooks == nil {
		return hooks.Hook{}, false
	}
	path := map[hooks.Event]string{hooks.Online: r.Hooks.Online, hooks.Offline: r.Hooks.Offline, hooks.Failed: r.Hooks.Failed}[ev]
	if path == "" {
		return hooks.Hook{}, false
	}
	return hooks.Hook{Path: path, Timeout: r.Hooks.TimeoutDuration(), Started: childScheduling}, true
}

func (a *Agent) hookEnv(name string, r consensus.Resource, ev hooks.Event, reason string) hooks.Env {
	return hooks.Env{Event: ev, Resource: name, Address: r.Address, Interface: r.Interface, Node: a.cfg.NodeID, Reason: reason}
}

// runOnline starts the online hook of a resource that just came up.
func (a *Agent) runOnline(ctx context.Context, name string, r consensus.Resource, reason string) {
	h, ok := a.hookFor(r, hooks.Online)
	if !ok {
		return
	}
	a.hookRuns.wg.Add(1)
	go func() {
		defer a.hookRuns.wg.Done()
		a.nb.waitUp(ctx, name) // online hooks run after the NetBIOS interface is up
		_, err := hooks.Run(ctx, h, a.hookEnv(name, r, hooks.Online, reason), a.log.With("resource", name))
		if err == nil || ctx.Err() != nil {
			return
		}
		why := fmt.Sprintf("online hook %s failed: %v", h.Path, err)
		a.chk.mu.Lock()
		if a.chk.bad == nil {
			a.chk.bad = map[string]string{}
		}
		a.chk.bad[name] = why
		a.chk.mu.Unlock()
		a.poke()
		a.askMoveAway(ctx, name, why)
	}()
}

// runOffline runs the offline hooks of resources about to go, in parallel, waiting at
// most budget (0: each hook's own timeout).
func (a *Agent) runOffline(ctx context.Context, st consensus.State, names []string, budget time.Duration) {
	var wg sync.WaitGroup
	for _, name := range names {
		r, ok := st.Resources[name]
		if !ok {
			r = a.lastSpec(name)
		}
		h, ok := a.hookFor(r, hooks.Offline)
		if !ok {
			continue
		}
		wg.Add(1)
		a.hookRuns.wg.Add(1)
		go func() {
			defer a.hookRuns.wg.Done()
			defer wg.Done()
			if _, err := hooks.Run(ctx, h, a.hookEnv(name, r, hooks.Offline, "going offline here"), a.log.With("resource", name)); err != nil {
				a.log.Warn("offline hook failed; removing the address anyway", "resource", name, "err", err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitAtMost(done, budget)
}

// waitAtMost waits until done is closed or budget has passed (0: until done).
func waitAtMost(done <-chan struct{}, budget time.Duration) {
	if budget <= 0 {
		<-done
		return
	}
	select {
	case <-done:
	case <-time.After(budget):
	}
}

// runFailed starts the failed hook of a resource that just failed here.
func (a *Agent) runFailed(ctx context.Context, name string, r consensus.Resource, reason string) {
	h, ok := a.hookFor(r, hooks.Failed)
	if !ok {
		return
	}
	a.hookRuns.wg.Add(1)
	go func() {
		defer a.hookRuns.wg.Done()
		hooks.Run(ctx, h, a.hookEnv(name, r, hooks.Failed, reason), a.log.With("resource", name))
	}()
}

// lastSpec remembers the spec of resources held here, for the offline hook of one
// that was deleted.
func (a *Agent) lastSpec(name string) consensus.Resource {
	a.specMu.Lock()
	defer a.specMu.Unlock()
	return a.specs[name]
}

func (a *Agent) rememberSpecs(st consensus.State, held map[string]uint64) {
	a.specMu.Lock()
	defer a.specMu.Unlock()
	next := make(map[string]consensus.Resource, len(held))
	for name := range held {
		if r, ok := st.Resources[name]; ok {
			next[name] = r
		} else if r, ok := a.specs[name]; ok {
			next[name] = r
		}
	}
	a.specs = next
}
