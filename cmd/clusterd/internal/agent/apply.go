package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
)

// Apply makes the declared set (`clusterd apply -f`) in one raft entry, or says what
// it would change on a dry run.
func (b backend) Apply(ctx context.Context, req api.ApplyRequest) (api.ApplyResult, error) {
	rs := make([]consensus.Resource, len(req.Resources))
	for i, rr := range req.Resources {
		r, err := b.a.toResource(rr)
		if err != nil {
			return api.ApplyResult{}, fmt.Errorf("[[resource]] table %d: %w", i+1, err)
		}
		rs[i] = r
	}
	gs := make([]consensus.Group, len(req.Groups))
	for i, gr := range req.Groups {
		g, err := toGroup(gr)
		if err != nil {
			return api.ApplyResult{}, fmt.Errorf("[[group]] table %d: %w", i+1, err)
		}
		gs[i] = g
	}
	st, _ := b.a.store.State()
	p, err := planApply(st, rs, gs, req.Prune)
	if err != nil {
		return api.ApplyResult{}, err
	}
	if req.DryRun || p.empty() {
		return p.result, nil
	}
	p.result.Index, err = b.a.commit(ctx, consensus.ApplyChanges(p.changes))
	return p.result, err
}

// applyPlan is a declared set compared with the state: what the one command that
// makes it changes, and the names of the answer.
type applyPlan struct {
	changes consensus.Changes
	result  api.ApplyResult
}

func (p applyPlan) empty() bool {
	c := p.changes
	return len(c.Resources)+len(c.Delete)+len(c.Groups)+len(c.DeleteGroups) == 0
}

// planApply compares the declared resources and group settings, each valid on its
// own, with st. prune removes the resources not declared and, if any group is
// declared, the group settings not declared: a file without [[group]] tables leaves
// the settings made with `clusterd group set` alone. It refuses a name declared
// twice and a declared group that no resource would belong to after the apply
// (most likely a misspelt name: its hooks would never run).
func planApply(st consensus.State, rs []consensus.Resource, gs []consensus.Group, prune bool) (applyPlan, error) {
	p := applyPlan{result: api.ApplyResult{ApplyNames: emptyNames(), Groups: emptyNames()}}
	declared := make(map[string]int, len(rs)) // name -> table number
	members := map[string]bool{}              // groups with a member after the apply
	for i, r := range rs {
		if first, dup := declared[r.Name]; dup {
			return applyPlan{}, fmt.Errorf("%w: resource %q is declared twice ([[resource]] tables %d and %d); each [[resource]] needs its own name",
				api.ErrInvalid, r.Name, first, i+1)
		}
		declared[r.Name] = i + 1
		if r.Group != "" {
			members[r.Group] = true
		}
		prev, exists := st.Resources[r.Name]
		if exists && sameJSON(prev, r) {
			p.result.Unchanged = append(p.result.Unchanged, r.Name)
			continue
		}
		noteChange(&p.result.ApplyNames, exists, r.Name)
		p.changes.Resources = append(p.changes.Resources, r)
	}
	for _, name := range slices.Sorted(maps.Keys(st.Resources)) {
		if _, ok := declared[name]; ok {
			continue
		}
		if prune {
			p.changes.Delete = append(p.changes.Delete, name)
		} else if g := st.Resources[name].Group; g != "" {
			members[g] = true
		}
	}
	p.result.Removed = append(p.result.Removed, p.changes.Delete...)

	declaredGroups := make(map[string]int, len(gs))
	for i, g := range gs {
		if first, dup := declaredGroups[g.Name]; dup {
			return applyPlan{}, fmt.Errorf("%w: group %q is declared twice ([[group]] tables %d and %d); each [[group]] needs its own name",
				api.ErrInvalid, g.Name, first, i+1)
		}
		declaredGroups[g.Name] = i + 1
		if !members[g.Name] {
			return applyPlan{}, noMembers(g.Name, prune, members)
		}
		prev, exists := st.Groups[g.Name]
		if exists && sameJSON(prev, g) {
			p.result.Groups.Unchanged = append(p.result.Groups.Unchanged, g.Name)
			continue
		}
		noteChange(&p.result.Groups, exists, g.Name)
		p.changes.Groups = append(p.changes.Groups, g)
	}
	if prune && len(gs) > 0 {
		for _, name := range slices.Sorted(maps.Keys(st.Groups)) {
			if _, ok := declaredGroups[name]; !ok {
				p.changes.DeleteGroups = append(p.changes.DeleteGroups, name)
			}
		}
	}
	p.result.Groups.Removed = append(p.result.Groups.Removed, p.changes.DeleteGroups...)
	return p, nil
}

func noMembers(group string, prune bool, members map[string]bool) error {
	where := fmt.Sprintf("in the file or the cluster has group = %q", group)
	if prune {
		where = fmt.Sprintf("in the file has group = %q (--prune removes the cluster's others)", group)
	}
	inUse := ""
	if len(members) > 0 {
		inUse = "; the resources' groups are " + strings.Join(slices.Sorted(maps.Keys(members)), ", ")
	}
	return fmt.Errorf("%w: group %q has no member: no resource %s, so its hooks would never run "+
		"(set group = %q in its [[resource]] tables, or correct the name%s)", api.ErrInvalid, group, where, group, inUse)
}

// noteChange lists name as created or, if it exists, updated.
func noteChange(n *api.ApplyNames, exists bool, name string) {
	if exists {
		n.Updated = append(n.Updated, name)
	} else {
		n.Created = append(n.Created, name)
	}
}

func emptyNames() api.ApplyNames {
	return api.ApplyNames{Created: []string{}, Updated: []string{}, Unchanged: []string{}, Removed: []string{}}
}

// sameJSON says whether two records are stored alike: an unchanged one is left out
// of the command, so applying a file twice commits nothing.
func sameJSON(x, y any) bool {
	bx, _ := json.Marshal(x)
	by, _ := json.Marshal(y)
	return string(bx) == string(by)
}
