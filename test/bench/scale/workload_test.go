package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/clusterd/clusterd/health/api"
)

func TestApplyFile(t *testing.T) {
	for _, netbios := range []bool{false, true} {
		w := newWorkload(300, netbios)
		var f struct{ Resource []api.ResourceRequest }
		if _, err := toml.Decode(w.applyFile(), &f); err != nil {
			t.Fatalf("netbios=%v: the apply file does not parse: %v", netbios, err)
		}
		if len(f.Resource) != 300 {
			t.Fatalf("netbios=%v: got %d resources, want 300", netbios, len(f.Resource))
		}
		last := f.Resource[299]
		// 254 addresses in 198.18.1.0/24 (no .0, no .255), then 46 more.
		if last.Name != "vip-00300" || last.Address != "198.18.2.46/16" || last.Interface != "eth0" {
			t.Errorf("netbios=%v: last resource %+v", netbios, last)
		}
		wantNames := []string(nil)
		if netbios {
			wantNames = []string{"NODE0300"}
		}
		if !slices.Equal(last.NetBIOSNames, wantNames) || (netbios && !slices.Equal(last.WINS, []string{"198.18.0.1"})) {
			t.Errorf("netbios=%v: names %v wins %v", netbios, last.NetBIOSNames, last.WINS)
		}
	}
}

func TestCountStatus(t *testing.T) {
	st := api.Status{Resources: []api.ResourceStatus{
		{Name: "a", State: api.StateOnline, NetBIOS: []api.NameStatus{{Name: "A<00>", State: "registered"}, {Name: "A<20>", State: "registered"}}},
		{Name: "b", State: api.StateOnline, NetBIOS: []api.NameStatus{{Name: "B<00>", State: "registering"}}},
		{Name: "c", State: api.StateOnline},
		{Name: "d", State: api.StateOnlinePending},
		{Name: "other", State: api.StateOnline},
	}}
	names := nameSet([]string{"a", "b", "c", "d"})
	for _, tc := range []struct {
		netbios bool
		want    statusCount
	}{
		{false, statusCount{Listed: 4, Online: 3}},
		{true, statusCount{Listed: 4, Online: 1}}, // b registering, c has no names
	} {
		if got := countStatus(st, names, tc.netbios); got != tc.want {
			t.Errorf("countStatus(netbios=%v): got %+v, want %+v", tc.netbios, got, tc.want)
		}
	}
	if got := states(st, names); !strings.Contains(got, "online 3") || !strings.Contains(got, "online-pending 1") {
		t.Errorf("states: got %q", got)
	}
}

func TestSelectCases(t *testing.T) {
	for _, tc := range []struct {
		only string
		want []string
		err  bool
	}{
		{"", allCases, false},
		{"placement,single", []string{"single", "placement"}, false},
		{"1", []string{"single", "single-netbios"}, false},
		{"2,3", []string{"cluster"}, false},
		{"cluster, 4", []string{"cluster", "placement", "limits"}, false},
		{"nope", nil, true},
	} {
		got, err := selectCases(tc.only)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) {
			t.Errorf("selectCases(%q): got %v, %v; want %v (error %v)", tc.only, got, err, tc.want, tc.err)
		}
	}
}

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkPlace10k-2   	      20	  25412345 ns/op	      3570 moves
BenchmarkPlace10k-2   	      20	  23000000 ns/op	      3570 moves
BenchmarkPlace10kOther-2  20  1 ns/op
PASS`
	ns, moves := parseBench(out, "BenchmarkPlace10k")
	if !slices.Equal(ns, []float64{25412345, 23000000}) || moves != 3570 {
		t.Errorf("parseBench: got %v, %v", ns, moves)
	}
}

func TestJoinMoves(t *testing.T) {
	j := joinMoves(700, 7, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if j.placed != 700 || !slices.Equal(j.perNode, []int{100, 100, 100, 100, 100, 100, 100}) {
		t.Errorf("initial placement: %d moves, per node %v; want 700, 100 each", j.placed, j.perNode)
	}
	if len(j.onJoin) != 0 {
		t.Errorf("Place after a join: got %d moves, want none", len(j.onJoin))
	}
	if j.minRebalance != 87 || len(j.rebalance) < j.minRebalance || !j.allToNew {
		t.Errorf("Rebalance after a join: %d moves (all to %s: %v), want at least %d, all to the new node", len(j.rebalance), j.newNode, j.allToNew, j.minRebalance)
	}
}

func TestPickVictim(t *testing.T) {
	v := kernelView{PerNode: map[string]int{"n1": 300, "n2": 200, "n3": 250, "n4": 250}}
	if got := pickVictim(v, "n1"); got != "n3" {
		t.Errorf("pickVictim: got %q, want n3 (most after the leader n1, lowest id on a tie)", got)
	}
	if got := pickVictim(kernelView{PerNode: map[string]int{"n1": 5, "n2": 0}}, "n1"); got != "" {
		t.Errorf("pickVictim with nothing off the leader: got %q, want none", got)
	}
}

func TestProcParsers(t *testing.T) {
	ticks, err := parseStatTicks("4242 (clusterd agent) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 37 0 0 20 0 12 0 100 0 0")
	if err != nil || ticks != 187 {
		t.Errorf("parseStatTicks: got %d, %v; want 187", ticks, err)
	}
	if _, err := parseStatTicks("4242 clusterd S 1"); err == nil {
		t.Error("parseStatTicks without parentheses: no error")
	}
	rss, err := parseRSS("Name:\tclusterd\nVmRSS:\t   25432 kB\nThreads:\t9\n")
	if err != nil || rss != 25432 {
		t.Errorf("parseRSS: got %d, %v; want 25432", rss, err)
	}
	if _, err := parseRSS("Name:\tx\n"); err == nil {
		t.Error("parseRSS without VmRSS: no error")
	}
	a := procSample{at: time.Unix(0, 0), ticks: 100}
	b := procSample{at: time.Unix(10, 0), ticks: 150}
	if got := cpuPercent(a, b); got != 5 {
		t.Errorf("cpuPercent: got %v, want 5 (0.5 s of CPU in 10 s)", got)
	}
}
