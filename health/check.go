// Package health runs clusterd's health checks: per-resource checks (TCP connect,
// HTTP GET with an expected status, an executable with a timeout) with interval,
// timeout, rise and fall counts, node checks (carrier of managed interfaces, the
// agent's own loop lag), and the flap limit that stops moving a resource that fails
// over too often. The decisions (rise/fall, flap limit) are pure; probes are the
// side effects at the edge. The API and endpoint live in health/api.
package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"time"
)

// Kind is a check's kind.
type Kind string

const (
	TCP  Kind = "tcp"  // connect to Target (host:port)
	HTTP Kind = "http" // GET Target (URL), expect Expect (default 200)
	Exec Kind = "exec" // run Target (an executable); exit 0 is healthy
)

// Spec describes one check. Zero durations and counts take the defaults.
type Spec struct {
	Kind     Kind          `json:"kind"`
	Target   string        `json:"target"`
	Expect   int           `json:"expect,omitempty"`
	Interval time.Duration `json:"interval,omitempty"` // default 2 s
	Timeout  time.Duration `json:"timeout,omitempty"`  // default 1 s (at most the interval)
	Rise     int           `json:"rise,omitempty"`     // successes in a row to turn healthy, default 2
	Fall     int           `json:"fall,omitempty"`     // failures in a row to turn unhealthy, default 3
}

// Defaults: HAProxy's rise 2 / fall 3 and a 2 s interval — a dead service is noticed
// in about 6 s without one lost connection failing a resource over.
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// WithDefaults fills zero fields.
func (s Spec) WithDefaults() Spec {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = min(DefaultTimeout, s.Interval)
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
	if s.Kind == HTTP && s.Expect == 0 {
		s.Expect = http.StatusOK
	}
	return s
}

// Validate checks a spec an operator wrote; errors name the value and the fix.
func (s Spec) Validate() error {
	switch s.Kind {
	case TCP:
		if _, _, err := net.SplitHostPort(s.Target); err != nil {
			return fmt.Errorf("tcp check target %q is not HOST:PORT (e.g. 198.18.1.10:445)", s.Target)
		}
	case HTTP:
		if !strings.HasPrefix(s.Target, "http://") && !strings.HasPrefix(s.Target, "https://") {
			return fmt.Errorf("http check target %q is not an http:// or https:// URL", s.Target)
		}
		if s.Expect != 0 && (s.Expect < 100 || s.Expect > 599) {
			return fmt.Errorf("http check expects status %d, which is not 100-599", s.Expect)
		}
	case Exec:
		if !strings.HasPrefix(s.Target, "/") {
			return fmt.Errorf("exec check %q must be an absolute path to an executable", s.Target)
		}
	default:
		return fmt.Errorf("check kind %q is not known (use tcp, http or exec)", s.Kind)
	}
	d := s.WithDefaults()
	switch {
	case d.Interval < 100*time.Millisecond || d.Interval > time.Hour:
		return fmt.Errorf("check interval %s is outside 100ms..1h", d.Interval)
	case d.Timeout <= 0 || d.Timeout > d.Interval:
		return fmt.Errorf("check timeout %s must be positive and at most the interval %s", d.Timeout, d.Interval)
	case d.Rise < 1 || d.Rise > 100 || d.Fall < 1 || d.Fall > 100:
		return fmt.Errorf("check rise %d / fall %d must be 1..100", d.Rise, d.Fall)
	}
	return nil
}

// String names the check in messages: "tcp 198.18.1.10:445".
func (s Spec) String() string { return string(s.Kind) + " " + s.Target }

// Probe runs the check once.
func (s Spec) Probe(ctx context.Context) error { return s.ProbeStarted(ctx, nil) }

// ProbeStarted runs the check once; for an exec check, started (if set) is called
// with the command's pid as soon as it started (the agent returns it to normal
// scheduling: it inherits the agent's real-time one).
func (s Spec) ProbeStarted(ctx context.Context, started func(pid int)) error {
	s = s.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	switch s.Kind {
	case TCP:
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", s.Target)
		if err != nil {
			return err
		}
		return c.Close()
	case HTTP:
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Target, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != s.Expect {
			return fmt.Errorf("HTTP %d, want %d", resp.StatusCode, s.Expect)
		}
		return nil
	case Exec:
		cmd := exec.CommandContext(ctx, s.Target)
		cmd.WaitDelay = 100 * time.Millisecond
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Start()
		if err == nil {
			if started != nil {
				started(cmd.Process.Pid)
			}
			err = cmd.Wait()
		}
		if ctx.Err() != nil {
			return fmt.Errorf("timed out after %s", s.Timeout)
		}
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(out.String()))
		}
		return nil
	}
	return errors.New("unknown check kind")
}

// State is a check's rise/fall state machine. The zero value starts healthy (a
// resource is not failed over before its check ever ran).
type State struct {
	Unhealthy bool
	ok, bad   int   // consecutive results
	Last      error // the last failure
}

// Observe feeds one result and reports whether the verdict changed.
func (st *State) Observe(spec Spec, err error) bool {
	spec = spec.WithDefaults()
	if err == nil {
		st.ok, st.bad = st.ok+1, 0
		if st.Unhealthy && st.ok >= spec.Rise {
			st.Unhealthy = false
			return true
		}
		return false
	}
	st.ok, st.bad, st.Last = 0, st.bad+1, err
	if !st.Unhealthy && st.bad >= spec.Fall {
		st.Unhealthy = true
		return true
	}
	return false
}

// Flaps limits health failovers of one resource: at most Max in any Period (like
// Windows' "maximum failures in the specified period", event 1254).
type Flaps struct {
	Max    int
	Period time.Duration
	times  []time.Time
}

// Allow records a failover at now and reports whether it is within the limit.
func (f *Flaps) Allow(now time.Time) bool {
	kept := f.times[:0]
	for _, t := range f.times {
		if now.Sub(t) < f.Period {
			kept = append(kept, t)
		}
	}
	f.times = kept
	if len(f.times) >= f.Max {
		return false
	}
	f.times = append(f.times, now)
	return true
}

// ParseSpec reads a check as operators write it:
//
//	tcp:HOST:PORT[,interval=2s,timeout=1s,rise=2,fall=3]
//	http://HOST/PATH[,expect=200,...]   (https:// too)
//	exec:/PATH/TO/CHECK[,...]
func ParseSpec(s string) (Spec, error) {
	main, opts, _ := strings.Cut(s, ",")
	var spec Spec
	switch {
	case strings.HasPrefix(main, "tcp:"):
		spec = Spec{Kind: TCP, Target: strings.TrimPrefix(main, "tcp:")}
	case strings.HasPrefix(main, "http://"), strings.HasPrefix(main, "https://"):
		spec = Spec{Kind: HTTP, Target: main}
	case strings.HasPrefix(main, "exec:"):
		spec = Spec{Kind: Exec, Target: strings.TrimPrefix(main, "exec:")}
	default:
		return spec, fmt.Errorf("check %q: write tcp:HOST:PORT, http://URL or exec:/PATH, optionally followed by ,interval=2s,timeout=1s,rise=2,fall=3,expect=200", s)
	}
	for _, kv := range strings.Split(opts, ",") {
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return spec, fmt.Errorf("check %q: option %q is not KEY=VALUE", s, kv)
		}
		var err error
		switch k {
		case "interval":
			spec.Interval, err = time.ParseDuration(v)
		case "timeout":
			spec.Timeout, err = time.ParseDuration(v)
		case "rise":
			_, err = fmt.Sscanf(v, "%d", &spec.Rise)
		case "fall":
			_, err = fmt.Sscanf(v, "%d", &spec.Fall)
		case "expect":
			_, err = fmt.Sscanf(v, "%d", &spec.Expect)
		default:
			return spec, fmt.Errorf("check %q: unknown option %q (use interval, timeout, rise, fall, expect)", s, k)
		}
		if err != nil {
			return spec, fmt.Errorf("check %q: option %s=%q: %v", s, k, v, err)
		}
	}
	return spec, spec.Validate()
}
