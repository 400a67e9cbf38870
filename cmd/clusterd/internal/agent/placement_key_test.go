package agent

import (
	"testing"
	"time"

	"github.com/clusterd/clusterd/consensus"
)

// TestPlacementKey: the periodic pass is skipped only while nothing placement reads
// can have changed without a revision or a liveness notice.
func TestPlacementKey(t *testing.T) {
	st := consensus.State{
		Revision:  7,
		Nodes:     map[string]consensus.Node{"n1": {}, "n2": {}, "n3": {}},
		Resources: map[string]consensus.Resource{"a": {}, "b": {}},
	}
	in := consensus.Input{Nodes: st.Nodes, Resources: st.Resources, Alive: map[string]bool{"n1": true, "n2": true}}
	a := &Agent{}
	var w windowCache
	base := a.placementKey(in, st, &w)
	if !base.valid {
		t.Fatalf("key of a plain input is not valid: %+v", base)
	}
	if again := a.placementKey(in, st, &w); again != base {
		t.Errorf("same input, different key: %+v vs %+v", again, base)
	}

	downIn := in
	downIn.Alive = map[string]bool{"n1": true}
	if k := a.placementKey(downIn, st, &w); k == base {
		t.Errorf("n2 down: key unchanged (%+v); the pass must run", k)
	}

	next := st
	next.Revision = 8
	if k := a.placementKey(in, next, &w); k == base {
		t.Errorf("new revision: key unchanged")
	}

	locked := in
	locked.Resources = map[string]consensus.Resource{"a": {}} // "b" in a graceful move
	if k := a.placementKey(locked, st, &w); k.valid {
		t.Errorf("a resource held out by a graceful move: key valid (%+v), want invalid", k)
	}

	win := st
	win.Revision = 9
	win.Resources = map[string]consensus.Resource{"a": {Failback: "window:02:00-04:00"}, "b": {}}
	winIn := in
	winIn.Resources = win.Resources
	if k := a.placementKey(winIn, win, &w); k.valid {
		t.Errorf("failback window: key valid (%+v), want invalid (the clock matters)", k)
	}

	a.hm.avoid = map[[2]string]time.Time{{"a", "n2"}: time.Now()}
	if k := a.placementKey(in, st, &w); k.valid {
		t.Errorf("a health-check avoidance: key valid (%+v), want invalid", k)
	}
}
