package main

import (
	"testing"
	"time"
)

func TestParseLogLine(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		ok         bool
		msg        string
		fields     map[string]string
	}{
		{"quoted message and values", `time=2026-11-21T16:38:00.256Z level=WARN msg="node n2 is down: no lease renewal for 190ms (its \"addresses\")" event=1135 node=n1`,
			true, `node n2 is down: no lease renewal for 190ms (its "addresses")`, map[string]string{"event": "1135", "node": "n1", "level": "WARN"}},
		{"bare message", `time=2026-11-21T16:38:00.245Z level=INFO msg=placement resource=vip-00002 from=n2 to=n1`,
			true, "placement", map[string]string{"resource": "vip-00002", "to": "n1"}},
		{"no time", `level=INFO msg=x`, false, "", nil},
		{"not slog", `tcpdump: listening on br0`, false, "", nil},
		{"unterminated quote keeps what came before", `time=2026-11-21T16:38:00.245Z msg="oops`, true, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, ok := parseLogLine(tc.line)
			if ok != tc.ok || l.Msg != tc.msg {
				t.Fatalf("parseLogLine(%q): got ok=%v msg %q, want ok=%v msg %q", tc.line, ok, l.Msg, tc.ok, tc.msg)
			}
			for k, v := range tc.fields {
				if l.Fields[k] != v {
					t.Errorf("field %s: got %q, want %q", k, l.Fields[k], v)
				}
			}
			if ok && !l.At.Equal(mustTime(t, tc.line[5:29])) {
				t.Errorf("time: got %v", l.At)
			}
		})
	}
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func TestParseMachine(t *testing.T) {
	got, err := parseMachine("cpu  100 5 50 1000 20 3 2 7 40 0")
	if err != nil {
		t.Fatal(err)
	}
	// busy = user+nice+system+irq+softirq+steal = 100+5+50+3+2+7; total adds idle and iowait.
	if want := (machineSample{busy: 167, total: 1187}); got != want {
		t.Errorf("parseMachine: got %+v, want %+v", got, want)
	}
	if _, err := parseMachine("intr 1 2 3"); err == nil {
		t.Error("parseMachine of a non-cpu line: no error")
	}
	if got := busyCores(machineSample{100, 1000}, machineSample{150, 1100}, 2); got != 1 {
		t.Errorf("busyCores: got %v, want 1", got)
	}
}

func TestParseLoopLag(t *testing.T) {
	for _, tc := range []struct {
		body string
		want time.Duration
	}{
		{"[+] raft-leader ok\n[+] loop-lag ok\n", 0},
		{"[+] raft-leader ok\n[-] loop-lag failed: the agent's timers ran 123ms late (limit 75ms): the machine is overloaded\n", 123 * time.Millisecond},
		{"[-] loop-lag failed: the agent's timers ran 1.5s late (limit 75ms)", 1500 * time.Millisecond},
		{"[-] loop-lag failed: the agent's timers ran soon late", 0},
	} {
		if got := parseLoopLag(tc.body); got != tc.want {
			t.Errorf("parseLoopLag(%q): got %v, want %v", tc.body, got, tc.want)
		}
	}
}
