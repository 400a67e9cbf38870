package agent

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/netbios"
	"github.com/clusterd/clusterd/netbios/nbns"
)

func nbResource(addr string, names ...string) consensus.Resource {
	return consensus.Resource{Address: netip.MustParsePrefix(addr), Interface: "eth0",
		NetBIOS: &consensus.NetBIOS{Names: names, WINS: []netip.Addr{netip.MustParseAddr("198.18.0.1")}, NodeType: "H"}}
}

func TestIndexPeers(t *testing.T) {
	st := consensus.NewState()
	st.Revision = 7
	st.Resources["a"] = nbResource("198.18.1.1/16", "SHARED<20>", "A<00>")
	st.Resources["b"] = nbResource("198.18.1.2/16", "shared<20>")
	st.Resources["c"] = nbResource("198.18.1.3/16", "SHARED<20>")
	st.Resources["plain"] = consensus.Resource{Address: netip.MustParsePrefix("198.18.1.4/16"), Interface: "eth0"}
	x := buildIndex(st)
	shared := nbns.Name{Label: "SHARED", Suffix: 0x20, Scope: "corp"}
	cases := []struct {
		name string
		self string
		n    nbns.Name
		want []string
	}{
		{"others carrying the name, case and scope ignored", "a", shared, []string{"198.18.1.2", "198.18.1.3"}},
		{"self left out", "b", shared, []string{"198.18.1.1", "198.18.1.3"}},
		{"name only self carries", "a", nbns.Name{Label: "A", Suffix: 0}, nil},
		{"other suffix is another name", "a", nbns.Name{Label: "SHARED", Suffix: 0}, nil},
		{"resource without NetBIOS", "plain", shared, []string{"198.18.1.1", "198.18.1.2", "198.18.1.3"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range x.peersOf(tc.self, tc.n) {
				got = append(got, a.String())
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("peersOf(%q, %v) = %v, want %v", tc.self, tc.n, got, tc.want)
			}
		})
	}
	if _, ok := x.specs["plain"]; ok {
		t.Errorf("specs has a resource without NetBIOS names")
	}
	if got := len(x.specs); got != 3 {
		t.Errorf("specs: %d resources, want 3", got)
	}
}

func TestIndexCurrent(t *testing.T) {
	st := consensus.NewState()
	st.Revision = 3
	st.Resources["a"] = nbResource("198.18.1.1/16", "A<20>")
	x := buildIndex(st)
	grown := st.Clone()
	grown.Resources["b"] = nbResource("198.18.1.2/16", "B<20>")
	later := st.Clone()
	later.Revision = 4
	cases := []struct {
		name string
		x    *nbIndex
		st   consensus.State
		want bool
	}{
		{"same revision", x, st, true},
		{"new revision", x, later, false},
		{"same revision, other resources (a restored state)", x, grown, false},
		{"no index yet", nil, st, false},
	}
	for _, tc := range cases {
		if got := tc.x.current(tc.st); got != tc.want {
			t.Errorf("%s: current = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestSpecOf(t *testing.T) {
	cases := []struct {
		name    string
		r       consensus.Resource
		names   int
		nodeT   nbns.NodeType
		wantErr bool
	}{
		{"two names with WINS", nbResource("198.18.1.1/16", "A<00>", "A<20>"), 2, nbns.HNode, false},
		{"bad name", nbResource("198.18.1.1/16", "THIS-NAME-IS-FAR-TOO-LONG<20>"), 0, 0, true},
	}
	for _, tc := range cases {
		s := specOf("r", tc.r)
		if (s.err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, s.err, tc.wantErr)
			continue
		}
		if s.err == nil && (len(s.names) != tc.names || s.nodeType != tc.nodeT || len(s.wins) != 1 || s.key == "") {
			t.Errorf("%s: spec %+v, want %d names, node type %v, 1 server, a key", tc.name, s, tc.names, tc.nodeT)
		}
	}
}

func TestNameRows(t *testing.T) {
	a20 := nbns.Name{Label: "A", Suffix: 0x20}
	a00 := nbns.Name{Label: "A", Suffix: 0x00}
	row := func(n nbns.Name, s netbios.State) netbios.NameStatus { return netbios.NameStatus{Name: n, State: s} }
	cases := []struct {
		name string
		in   []netbios.NameStatus
		want string
	}{
		{"none", nil, ""},
		{"one per name, in order", []netbios.NameStatus{row(a20, netbios.StateRegistered), row(a00, netbios.StateRegistering)}, "A<20>=registered A<00>=registering "},
		{"worst over servers", []netbios.NameStatus{row(a20, netbios.StateRegistered), row(a20, netbios.StateFailed), row(a20, netbios.StateRefreshing)}, "A<20>=failed "},
		{"conflict beats failed", []netbios.NameStatus{row(a20, netbios.StateFailed), row(a20, netbios.StateConflict)}, "A<20>=conflict "},
	}
	for _, tc := range cases {
		var got string
		for _, r := range nameRows(tc.in) {
			got += r.Name + "=" + r.State + " "
		}
		if got != tc.want {
			t.Errorf("%s: nameRows = %q, want %q", tc.name, got, tc.want)
		}
	}
}
