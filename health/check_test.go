package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRiseFall(t *testing.T) {
	spec := Spec{Kind: TCP, Target: "127.0.0.1:1", Rise: 2, Fall: 3}
	bad := errors.New("refused")
	tests := []struct {
		name    string
		results []error
		want    []bool // Unhealthy after each
	}{
		{"starts healthy", []error{nil}, []bool{false}},
		{"two failures are not enough", []error{bad, bad, nil}, []bool{false, false, false}},
		{"three failures in a row", []error{bad, bad, bad}, []bool{false, false, true}},
		{"one success does not restore", []error{bad, bad, bad, nil, bad}, []bool{false, false, true, true, true}},
		{"two successes restore", []error{bad, bad, bad, nil, nil}, []bool{false, false, true, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st State
			for i, r := range tt.results {
				st.Observe(spec, r)
				if st.Unhealthy != tt.want[i] {
					t.Fatalf("after results %v: Unhealthy %v, want %v", tt.results[:i+1], st.Unhealthy, tt.want[i])
				}
			}
		})
	}
}

func TestFlaps(t *testing.T) {
	f := Flaps{Max: 2, Period: time.Minute}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {10 * time.Second, true}, {20 * time.Second, false}, {61 * time.Second, true}, {62 * time.Second, false}} {
		if got := f.Allow(t0.Add(tc.at)); got != tc.want {
			t.Fatalf("failover %d at +%s: Allow %v, want %v", i, tc.at, got, tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		spec Spec
		ok   bool
	}{
		{Spec{Kind: TCP, Target: "198.18.1.10:445"}, true},
		{Spec{Kind: TCP, Target: "198.18.1.10"}, false},
		{Spec{Kind: HTTP, Target: "http://198.18.1.10/health", Expect: 204}, true},
		{Spec{Kind: HTTP, Target: "198.18.1.10/health"}, false},
		{Spec{Kind: Exec, Target: "check.sh"}, false},
		{Spec{Kind: "ping", Target: "x"}, false},
		{Spec{Kind: TCP, Target: "198.18.1.10:1", Interval: time.Second, Timeout: 2 * time.Second}, false},
	} {
		if err := tc.spec.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.spec, err, tc.ok)
		}
	}
}

func TestProbes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	okScript := filepath.Join(dir, "ok.sh")
	os.WriteFile(okScript, []byte("#!/bin/sh\nexit 0\n"), 0o755)
	failScript := filepath.Join(dir, "fail.sh")
	os.WriteFile(failScript, []byte("#!/bin/sh\necho broken\nexit 3\n"), 0o755)
	hang := filepath.Join(dir, "hang.sh")
	os.WriteFile(hang, []byte("#!/bin/sh\nsleep 10\n"), 0o755)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	ctx := context.Background()
	for _, tc := range []struct {
		spec Spec
		ok   bool
	}{
		{Spec{Kind: TCP, Target: ln.Addr().String()}, true},
		{Spec{Kind: TCP, Target: closedAddr}, false},
		{Spec{Kind: HTTP, Target: srv.URL + "/"}, true},
		{Spec{Kind: HTTP, Target: srv.URL + "/bad"}, false},
		{Spec{Kind: HTTP, Target: srv.URL + "/bad", Expect: 503}, true},
		{Spec{Kind: Exec, Target: okScript}, true},
		{Spec{Kind: Exec, Target: failScript}, false},
		{Spec{Kind: Exec, Target: hang, Timeout: 200 * time.Millisecond, Interval: time.Second}, false},
	} {
		start := time.Now()
		err := tc.spec.Probe(ctx)
		if (err == nil) != tc.ok {
			t.Errorf("Probe(%s) = %v, want ok=%v", tc.spec, err, tc.ok)
		}
		if time.Since(start) > 2*time.Second {
			t.Errorf("Probe(%s) took %s, beyond its timeout", tc.spec, time.Since(start))
		}
	}
}

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Spec
		ok   bool
	}{
		{"tcp:198.18.1.10:445", Spec{Kind: TCP, Target: "198.18.1.10:445"}, true},
		{"tcp:198.18.1.10:445,interval=500ms,fall=2", Spec{Kind: TCP, Target: "198.18.1.10:445", Interval: 500 * time.Millisecond, Fall: 2}, true},
		{"http://198.18.1.10/health,expect=204", Spec{Kind: HTTP, Target: "http://198.18.1.10/health", Expect: 204}, true},
		{"exec:/usr/local/bin/check", Spec{Kind: Exec, Target: "/usr/local/bin/check"}, true},
		{"ping:198.18.1.10", Spec{}, false},
		{"tcp:198.18.1.10:445,color=red", Spec{}, false},
		{"tcp:198.18.1.10:445,fall=x", Spec{}, false},
	} {
		got, err := ParseSpec(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSpec(%q) = %+v, %v; want %+v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
