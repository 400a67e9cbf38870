package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/clusterd/clusterd/consensus"
)

func TestDecideHold(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		leased, held, keep, cutOff bool
		want                       holdVerdict
	}{
		{"lease runs", true, true, false, false, holdLease},
		{"lease runs, not added yet", true, false, false, false, holdLease},
		{"lease runs, keep policy", true, true, true, true, holdLease},
		{"waiting for the first lease", false, false, false, false, holdWait},
		{"keep never adds without a lease", false, false, true, true, holdWait},
		{"release policy, cut off", false, true, false, true, holdDrop},
		{"keep, cut off", false, true, true, true, holdKeep},
		{"keep, voters answer and deny (moved)", false, true, true, false, holdDrop},
		{"release, voters deny", false, true, false, false, holdDrop},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := decideHold(tc.leased, tc.held, tc.keep, tc.cutOff); got != tc.want {
				t.Errorf("decideHold(leased=%v, held=%v, keep=%v, cutOff=%v) = %v, want %v", tc.leased, tc.held, tc.keep, tc.cutOff, got, tc.want)
			}
		})
	}
}

func TestFenceKeepList(t *testing.T) {
	st := consensus.NewState()
	add := func(name, addr, policy, node string, offline bool) {
		st.Resources[name] = consensus.Resource{Name: name, Address: netip.MustParsePrefix(addr), Interface: "eth0", OnQuorumLoss: policy, Offline: offline}
		if node != "" {
			st.Assignments[name] = consensus.Assignment{Resource: name, Node: node, Epoch: 5}
		}
	}
	add("keep-here", "198.18.1.11/16", consensus.QuorumLossKeep, "n1", false)
	add("keep-here-b", "198.18.1.10/16", consensus.QuorumLossKeep, "n1", false)
	add("keep-moved", "198.18.1.12/16", consensus.QuorumLossKeep, "n2", false)
	add("keep-offline", "198.18.1.13/16", consensus.QuorumLossKeep, "n1", true)
	add("release", "198.18.1.14/16", consensus.QuorumLossRelease, "n1", false)
	add("default", "198.18.1.15/16", "", "n1", false)
	add("keep-not-held", "198.18.1.16/16", consensus.QuorumLossKeep, "n1", false)
	held := map[string]uint64{"keep-here": 5, "keep-here-b": 5, "keep-moved": 4, "keep-offline": 5, "release": 5, "default": 5, "gone": 3}
	got := fenceKeepList(st, "n1", held)
	want := []netip.Addr{netip.MustParseAddr("198.18.1.10"), netip.MustParseAddr("198.18.1.11")}
	if !slices.Equal(got, want) {
		t.Errorf("fenceKeepList = %v, want %v (held and assigned here with keep, sorted)", got, want)
	}
}

func TestKeepStateTransitions(t *testing.T) {
	var k keepState
	a, b := netip.MustParseAddr("198.18.1.10"), netip.MustParseAddr("198.18.1.11")
	started, ended := k.set(map[netip.Addr]string{a: "web", b: "db"})
	if !slices.Equal(started, []string{"db", "web"}) || len(ended) != 0 {
		t.Errorf("first set: started %v ended %v, want [db web] []", started, ended)
	}
	started, ended = k.set(map[netip.Addr]string{a: "web"})
	if len(started) != 0 || !slices.Equal(ended, []string{"db"}) {
		t.Errorf("second set: started %v ended %v, want [] [db]", started, ended)
	}
	if !k.isKept(a) || k.isKept(b) || k.count() != 1 {
		t.Errorf("isKept(web)=%v isKept(db)=%v count=%d, want true false 1", k.isKept(a), k.isKept(b), k.count())
	}
}
