package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/resource/hooks"
)

// Group lifecycle hooks (consensus.Group.Hooks), as a Pacemaker group or a CTDB event
// script would run them: once per group on a node. online runs after every member of
// the group is online here (address up, NetBIOS attached, checks passing); a failure
// fails the whole group over. offline runs before the first member goes (a graceful
// move, a delete, offline), or, when a member went without warning (its lease ran
// out, it failed), right after. failed runs once after a member failed here, until
// the group is up again. A member added to a group that is up here does not run
// online again; it is part of the group when the group next comes up.

// groupRuns is the reconciler's record of groups whose online hook ran here.
type groupRuns struct {
	up     map[string]map[string]bool // group → the members it came up with
	failed map[string]bool            // group → its failed hook ran since it came up
}

// planGroupHooks is the pure decision: which groups with hooks come up here (every
// member online here, not up yet) and which go down (up, but a member it came up
// with is no longer online here). members lists each group's members that are online
// (not offline) in the replicated state.
func planGroupHooks(groups map[string]consensus.Group, members map[string][]string, onlineHere map[string]bool, up map[string]map[string]bool) (start, stop []string) {
	for name, g := range groups {
		ms := members[name]
		if g.Hooks == nil || len(ms) == 0 || up[name] != nil {
			continue
		}
		all := true
		for _, m := range ms {
			all = all && onlineHere[m]
		}
		if all {
			start = append(start, name)
		}
	}
	for name, with := range up {
		for m := range with {
			if !onlineHere[m] {
				stop = append(stop, name)
				break
			}
		}
	}
	slices.Sort(start)
	slices.Sort(stop)
	return start, stop
}

// groupMembersOnline maps each group to its members that are not offline, by name.
func groupMembersOnline(st consensus.State) map[string][]string {
	out := map[string][]string{}
	for _, name := range slices.Sorted(maps.Keys(st.Resources)) {
		if r := st.Resources[name]; r.Group != "" && !r.Offline {
			out[r.Group] = append(out[r.Group], name)
		}
	}
	return out
}

func groupHook(g consensus.Group, ev hooks.Event) (hooks.Hook, bool) {
	if g.Hooks == nil {
		return hooks.Hook{}, false
	}
	path := map[hooks.Event]string{hooks.Online: g.Hooks.Online, hooks.Offline: g.Hooks.Offline, hooks.Failed: g.Hooks.Failed}[ev]
	return hooks.Hook{Path: path, Timeout: g.Hooks.TimeoutDuration(), Started: childScheduling}, path != ""
}

// groupEnv names the group and its members (as in the state st, or as they came up).
func (a *Agent) groupEnv(st consensus.State, group string, members []string, ev hooks.Event, reason string) hooks.Env {
	e := hooks.Env{Event: ev, Group: group, Node: a.cfg.NodeID, Reason: reason}
	for _, m := range members {
		r, ok := st.Resources[m]
		if !ok {
			r = a.lastSpec(m)
		}
		e.Resources = append(e.Resources, m)
		if r.Address.IsValid() {
			e.Addresses = append(e.Addresses, r.Address)
		}
		if e.Interface == "" {
			e.Interface = r.Interface
		}
	}
	return e
}

// syncGroupHooks runs after each reconcile pass: online hooks of groups now fully up
// here, offline hooks of groups that lost a member without warning.
func (a *Agent) syncGroupHooks(ctx context.Context, st consensus.State, obs map[string]observation) {
	if len(st.Groups) == 0 && len(a.grp.up) == 0 {
		return
	}
	onlineHere := make(map[string]bool, len(obs))
	for name, o := range obs {
		onlineHere[name] = o.State == api.StateOnline
	}
	members := groupMembersOnline(st)
	start, stop := planGroupHooks(st.Groups, members, onlineHere, a.grp.up)
	for _, name := range stop {
		// After the fact (a member's lease ran out or it failed): run it without
		// holding up the reconciler, whose next pass may have leases to keep.
		a.groupDown(ctx, st, name, time.Millisecond, "a member is no longer online here")
	}
	for _, name := range start {
		a.groupUp(ctx, st, name, members[name])
	}
}

// groupUp records the group as up here and starts its online hook.
func (a *Agent) groupUp(ctx context.Context, st consensus.State, name string, members []string) {
	if a.grp.up == nil {
		a.grp.up, a.grp.failed = map[string]map[string]bool{}, map[string]bool{}
	}
	with := make(map[string]bool, len(members))
	for _, m := range members {
		with[m] = true
	}
	a.grp.up[name] = with
	delete(a.grp.failed, name)
	h, ok := groupHook(st.Groups[name], hooks.Online)
	if !ok {
		return
	}
	env := a.groupEnv(st, name, members, hooks.Online, "every member is online on "+a.cfg.NodeID)
	a.hookRuns.wg.Add(1)
	go func() {
		defer a.hookRuns.wg.Done()
		for _, m := range members {
			a.nb.waitUp(ctx, m) // after every member's NetBIOS interface, too
		}
		_, err := hooks.Run(ctx, h, env, a.log.With("group", name))
		if err == nil || ctx.Err() != nil {
			return
		}
		why := fmt.Sprintf("online hook %s of group %s failed: %v", h.Path, name, err)
		a.chk.mu.Lock()
		if a.chk.bad == nil {
			a.chk.bad = map[string]string{}
		}
		for _, m := range members {
			a.chk.bad[m] = why
		}
		a.chk.mu.Unlock()
		a.poke()
		a.askMoveAway(ctx, members[0], why) // a move of one member moves its group
	}()
}

// groupDown forgets the group here and runs its offline hook, waiting at most budget
// (0: the hook's own timeout).
func (a *Agent) groupDown(ctx context.Context, st consensus.State, name string, budget time.Duration, reason string) {
	with := a.grp.up[name]
	delete(a.grp.up, name)
	g, ok := st.Groups[name]
	if !ok {
		return // its settings were deleted: nothing to run
	}
	h, ok := groupHook(g, hooks.Offline)
	if !ok {
		return
	}
	env := a.groupEnv(st, name, slices.Sorted(maps.Keys(with)), hooks.Offline, reason)
	done := make(chan struct{})
	a.hookRuns.wg.Add(1)
	go func() {
		defer a.hookRuns.wg.Done()
		defer close(done)
		if _, err := hooks.Run(ctx, h, env, a.log.With("group", name)); err != nil {
			a.log.Warn("group offline hook failed; its members go anyway", "group", name, "err", err)
		}
	}()
	waitAtMost(done, budget)
}

// groupsLeaving runs the offline hooks of the up groups among the leaving resources
// before their members' own offline hooks and before their names and addresses go.
func (a *Agent) groupsLeaving(ctx context.Context, st consensus.State, leaving []string, budget time.Duration, reason string) {
	var names []string
	for group, with := range a.grp.up {
		for _, m := range leaving {
			if with[m] {
				names = append(names, group)
				break
			}
		}
	}
	slices.Sort(names)
	start := time.Now()
	for _, name := range names {
		left := budget
		if budget > 0 {
			left = max(budget-time.Since(start), time.Millisecond)
		}
		a.groupDown(ctx, st, name, left, reason)
	}
}

// groupFailed runs the failed hook of the group of a member that just failed here,
// once until the group comes up again.
func (a *Agent) groupFailed(ctx context.Context, st consensus.State, member, reason string) {
	r, ok := st.Resources[member]
	if !ok || r.Group == "" || a.grp.failed[r.Group] {
		return
	}
	h, ok := groupHook(st.Groups[r.Group], hooks.Failed)
	if !ok {
		return
	}
	if a.grp.failed == nil {
		a.grp.failed = map[string]bool{}
	}
	a.grp.failed[r.Group] = true
	env := a.groupEnv(st, r.Group, groupMembersOnline(st)[r.Group], hooks.Failed, member+" failed: "+reason)
	a.hookRuns.wg.Add(1)
	go func() {
		defer a.hookRuns.wg.Done()
		hooks.Run(ctx, h, env, a.log.With("group", r.Group))
	}()
}

// The API's group settings (api.GroupBackend).

func (b backend) Groups(ctx context.Context) ([]api.GroupRequest, error) {
	st, _ := b.a.store.State()
	out := []api.GroupRequest{}
	for _, name := range slices.Sorted(maps.Keys(st.Groups)) {
		g := st.Groups[name]
		req := api.GroupRequest{Name: name}
		if g.Hooks != nil {
			req.HookOnline, req.HookOffline, req.HookFailed, req.HookTimeout = g.Hooks.Online, g.Hooks.Offline, g.Hooks.Failed, g.Hooks.Timeout
		}
		out = append(out, req)
	}
	return out, nil
}

func (b backend) PutGroup(ctx context.Context, req api.GroupRequest) (api.WriteResult, error) {
	g, err := toGroup(req)
	if err != nil {
		return api.WriteResult{}, err
	}
	idx, err := b.a.commit(ctx, consensus.PutGroup(g))
	return api.WriteResult{Index: idx}, err
}

// toGroup turns a `group set` or an apply file's [[group]] into a valid group record.
func toGroup(req api.GroupRequest) (consensus.Group, error) {
	g := consensus.Group{Name: req.Name}
	if req.HookOnline != "" || req.HookOffline != "" || req.HookFailed != "" || req.HookTimeout != "" {
		g.Hooks = &consensus.Hooks{Online: req.HookOnline, Offline: req.HookOffline, Failed: req.HookFailed, Timeout: req.HookTimeout}
	}
	if err := consensus.ValidateGroup(g); err != nil {
		return consensus.Group{}, fmt.Errorf("%w: %v", api.ErrInvalid, err)
	}
	return g, nil
}

func (b backend) DeleteGroup(ctx context.Context, name string) (api.WriteResult, error) {
	idx, err := b.a.commit(ctx, consensus.DeleteGroup(name))
	return api.WriteResult{Index: idx}, err
}

var _ api.GroupBackend = backend{}
