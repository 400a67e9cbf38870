package main

import (
	"io"
	"math"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
)

func TestPercentile(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		p    float64
		want float64
	}{
		{"none", nil, 50, math.NaN()},
		{"one", []float64{7}, 99, 7},
		{"median of odd", []float64{30, 10, 20}, 50, 20},
		{"median of even is the lower", []float64{40, 10, 30, 20}, 50, 20},
		{"p99 of ten is the max", []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 100}, 99, 100},
		{"p99 of 200", ramp(200), 99, 198},
		{"max", []float64{3, 1, 2}, 100, 3},
	}
	for _, tt := range tests {
		got := percentile(tt.xs, tt.p)
		if got != tt.want && !(math.IsNaN(got) && math.IsNaN(tt.want)) {
			t.Errorf("%s: percentile(%v, %v) = %v, want %v", tt.name, tt.xs, tt.p, got, tt.want)
		}
	}
}

func ramp(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func TestSummarise(t *testing.T) {
	results := []Result{
		{Impl: "clusterd", Profile: "default", Fault: "kill9", Failover: true, OutageMS: 300, TwoHolderMS: 1000, DoubleRounds: 200},
		{Impl: "keepalived", Profile: "default", Fault: "kill9", Failover: true, OutageMS: 3600},
		{Impl: "clusterd", Profile: "default", Fault: "kill9", Failover: true, OutageMS: 100, LeftBehind: []string{"n1"}},
		{Impl: "clusterd", Profile: "default", Fault: "kill9", Failover: false, DoubleRounds: 3},
		{Impl: "clusterd", Profile: "default", Fault: "kill9", Error: "lab: boom"},
	}
	got := summarise(results)
	want := []Row{
		{Impl: "clusterd", Profile: "default", Fault: "kill9", Runs: 3, Errors: 1, NoFailover: 1, Median: 100, P99: 300, Max: 300,
			TwoHolders: 2, MaxTwoHolderMS: 1000, MaxDoubleRounds: 200, LeftBehind: 1},
		{Impl: "keepalived", Profile: "default", Fault: "kill9", Runs: 1, Median: 3600, P99: 3600, Max: 3600},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("summarise:\ngot  %+v\nwant %+v", got, want)
	}
	var b strings.Builder
	if err := printTable(&b, got); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "keepalived") || strings.Count(b.String(), "\n") != 3 {
		t.Errorf("table has not a header and two rows:\n%s", b.String())
	}
}

func TestResultsRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	in := []Result{
		{Impl: "clusterd", Profile: "fast", Fault: "hostdeath", Run: 1, Failover: true, OutageMS: 81.5, LeftBehind: []string{}},
		{Impl: "keepalived", Profile: "default", Fault: "kill9", Run: 2, TwoHolderMS: 1020.25, DoubleRounds: 204, LeftBehind: []string{"n1"}},
	}
	for _, r := range in {
		if err := appendResult(path, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := readResults(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Errorf("read back:\ngot  %+v\nwant %+v", got, in)
	}
}

func TestOutageArithmetic(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	old, nu := "02:00:c6:12:00:65", "02:00:c6:12:00:66"
	tests := []struct {
		name        string
		replies     []cluster.Reply
		fault       int // ms
		first       int // the new holder's first reply, ms
		wantLast    int // lastBefore(fault)
		wantSilence time.Duration
	}{{
		name:    "old holder silent until the new one answers",
		replies: []cluster.Reply{{At: at(-5), MAC: old}, {At: at(0), MAC: old}, {At: at(300), MAC: nu}},
		fault:   1, first: 300, wantLast: 0, wantSilence: 300 * time.Millisecond,
	}, {
		name:    "old kernel keeps answering: no silence, the outage still counts",
		replies: []cluster.Reply{{At: at(-5), MAC: old}, {At: at(5), MAC: old}, {At: at(10), MAC: old}, {At: at(15), MAC: nu}},
		fault:   1, first: 15, wantLast: -5, wantSilence: 10 * time.Millisecond,
	}, {
		name:    "no reply before the fault",
		replies: []cluster.Reply{{At: at(40), MAC: nu}},
		fault:   0, first: 40, wantLast: 0, wantSilence: 40 * time.Millisecond,
	}}
	for _, tt := range tests {
		if got := lastBefore(tt.replies, at(tt.fault), at(tt.fault)); !got.Equal(at(tt.wantLast)) {
			t.Errorf("%s: lastBefore = %v ms, want %d ms", tt.name, ms(got.Sub(t0)), tt.wantLast)
		}
		if got := silence(tt.replies, at(tt.fault), at(tt.first)); got != tt.wantSilence {
			t.Errorf("%s: silence = %v, want %v", tt.name, got, tt.wantSilence)
		}
	}
}

func TestRenderKeepalived(t *testing.T) {
	nodes := []netip.Addr{netip.MustParseAddr("198.18.0.101"), netip.MustParseAddr("198.18.0.102"), netip.MustParseAddr("198.18.0.103")}
	tests := []struct {
		profile string
		node    int
		want    []string
	}{
		{"default", 1, []string{"vrrp_version 2", "advert_int 1\n", "priority 150", "unicast_src_ip 198.18.0.101", "198.18.0.102\n        198.18.0.103\n", "198.18.1.10/16 dev eth0", "nopreempt"}},
		{"fast", 2, []string{"vrrp_version 3", "advert_int 0.1\n", "priority 100", "unicast_src_ip 198.18.0.102", "198.18.0.101\n        198.18.0.103\n"}},
		{"fast10", 3, []string{"vrrp_version 3", "advert_int 0.01\n", "priority 50", "router_id n3"}},
	}
	for _, tt := range tests {
		got, err := renderKeepalived(tt.profile, tt.node, nodes, vip)
		if err != nil {
			t.Fatalf("%s n%d: %v", tt.profile, tt.node, err)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s n%d: config lacks %q:\n%s", tt.profile, tt.node, w, got)
			}
		}
	}
	if _, err := renderKeepalived("slow", 1, nodes, vip); err == nil {
		t.Error("profile slow: got no error")
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--bin", "x", "--faults", "kill9,hostdeath", "--runs", "3"}, ""},
		{[]string{"--bin", "x", "--faults", "kill7"}, `unknown fault "kill7"`},
		{[]string{"--bin", "x", "--impl", "pacemaker"}, `unknown implementation "pacemaker"`},
		{[]string{"--bin", "x", "--runs", "0"}, "--runs 0"},
		{[]string{"--bin", "", "--impl", "clusterd"}, "no clusterd binary"},
		{[]string{"--bin", "", "--impl", "keepalived"}, ""},
		{[]string{"--bin", "x", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		_, err := parseFlags(tt.args, io.Discard)
		if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("parseFlags(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
		}
	}
}

func TestUnsupported(t *testing.T) {
	tests := []struct {
		impl, profile, fault string
		skip                 bool
	}{
		{"clusterd", "default", "move", false},
		{"clusterd", "fast", "kill9", false},
		{"clusterd", "fast10", "kill9", true},
		{"keepalived", "fast10", "kill9", false},
		{"keepalived", "default", "move", true},
		{"keepalived", "slow", "kill9", true},
	}
	for _, tt := range tests {
		if got := unsupported(tt.impl, tt.profile, tt.fault); (got != "") != tt.skip {
			t.Errorf("unsupported(%s, %s, %s) = %q, want skip %v", tt.impl, tt.profile, tt.fault, got, tt.skip)
		}
	}
}

func TestAnsweredAlone(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	a, b := "02:00:c6:12:00:65", "02:00:c6:12:00:66"
	every5 := func(from, to int, mac string) []cluster.Reply {
		var out []cluster.Reply
		for ms := from; ms <= to; ms += 5 {
			out = append(out, cluster.Reply{At: at(ms), MAC: mac})
		}
		return out
	}
	tests := []struct {
		name    string
		replies []cluster.Reply
		want    bool
	}{
		{"steady", every5(0, 300, a), true},
		{"window not covered yet", every5(150, 300, a), false},
		{"second MAC in the window", append(every5(0, 200, a), every5(205, 300, b)...), false},
		{"second MAC before the window only", append(every5(0, 95, b), every5(100, 300, a)...), true},
		{"gap in the window", append(every5(0, 150, a), every5(250, 300, a)...), false},
		{"silent lately", every5(0, 250, a), false},
		{"none", nil, false},
	}
	for _, tt := range tests {
		if got := answeredAlone(tt.replies, a, at(100), at(302)); got != tt.want {
			t.Errorf("%s: answeredAlone = %v, want %v", tt.name, got, tt.want)
		}
	}
}
