package agent

import (
	"slices"
	"testing"

	"github.com/clusterd/clusterd/consensus"
)

func TestPlanGroupHooks(t *testing.T) {
	hooked := map[string]consensus.Group{"web": {Name: "web", Hooks: &consensus.Hooks{Online: "/bin/up"}}}
	members := map[string][]string{"web": {"web-a", "web-b"}, "plain": {"p-a"}}
	set := func(names ...string) map[string]bool {
		m := map[string]bool{}
		for _, n := range names {
			m[n] = true
		}
		return m
	}
	for _, tc := range []struct {
		name            string
		groups          map[string]consensus.Group
		online          map[string]bool
		up              map[string]map[string]bool
		wantStart, stop []string
	}{
		{name: "all members up: start", groups: hooked, online: set("web-a", "web-b"), wantStart: []string{"web"}},
		{name: "one member still pending: wait", groups: hooked, online: set("web-a")},
		{name: "already up: nothing", groups: hooked, online: set("web-a", "web-b"), up: map[string]map[string]bool{"web": set("web-a", "web-b")}},
		{name: "a member it came up with went: stop", groups: hooked, online: set("web-b"), up: map[string]map[string]bool{"web": set("web-a", "web-b")}, stop: []string{"web"}},
		{name: "a new member not up yet: no stop", groups: hooked, online: set("web-a"), up: map[string]map[string]bool{"web": set("web-a")}},
		{name: "group without settings: nothing", groups: nil, online: set("p-a", "web-a", "web-b")},
		{name: "settings deleted while up: stop when a member goes", groups: nil, online: set(), up: map[string]map[string]bool{"web": set("web-a")}, stop: []string{"web"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, stop := planGroupHooks(tc.groups, members, tc.online, tc.up)
			if !slices.Equal(start, tc.wantStart) || !slices.Equal(stop, tc.stop) {
				t.Errorf("planGroupHooks(online %v, up %v) = start %v stop %v, want start %v stop %v", tc.online, tc.up, start, stop, tc.wantStart, tc.stop)
			}
		})
	}
}
