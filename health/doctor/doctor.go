// Package doctor is clusterd's preflight (`clusterd doctor`): it finds what on this
// node will stop clusterd from working — missing capabilities, sysctls that break
// ARP or address removal, another process holding UDP 137 (Q232910, event 1044),
// missing interfaces, unreachable peers, clock steps — and says how to fix each.
//
// Each check is a pure function from what was read to findings, with table tests;
// the readers (procfs, sysctls, a probe bind, TCP connects, clocks) sit beside them
// and read the network namespace of the calling thread, so kernel tests run them on
// a thread inside a namespace they create.
package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Severity says whether a finding blocks clusterd.
type Severity int

// Severities, in increasing order.
const (
	OK   Severity = iota // nothing to do
	Info                 // worth knowing; clusterd works
	Warn                 // clusterd starts, but something will go wrong or may
	Fail                 // clusterd cannot do its job on this node until fixed
)

func (s Severity) String() string {
	switch s {
	case OK:
		return "ok"
	case Info:
		return "info"
	case Warn:
		return "warn"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("severity(%d)", int(s))
}

// MarshalText writes the severity as ok, info, warn or fail.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads ok, info, warn or fail.
func (s *Severity) UnmarshalText(b []byte) error {
	for v := OK; v <= Fail; v++ {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("severity %q is not ok, info, warn or fail", b)
}

// tag is the severity as the text report shows it.
func (s Severity) tag() string {
	if s == Fail {
		return "[FAIL]"
	}
	return "[" + s.String() + "]"
}

// Finding is the result of one check about one subject.
type Finding struct {
	Check    string   `json:"check"`             // capability, sysctl, interface, udp137, peer, clock, api, record
	Subject  string   `json:"subject,omitempty"` // CAP_NET_RAW, eth0, 198.18.0.10, n2 raft, ...
	Severity Severity `json:"severity"`
	Message  string   `json:"message"`       // what was found, self-contained
	Fix      string   `json:"fix,omitempty"` // what to do about it (warn and fail)
}

// Summary counts findings by severity.
type Summary struct {
	Blocking int `json:"blocking"`
	Warnings int `json:"warnings"`
}

// Summarize counts the findings that block and those that warn.
func Summarize(fs []Finding) Summary {
	var s Summary
	for _, f := range fs {
		switch f.Severity {
		case Fail:
			s.Blocking++
		case Warn:
			s.Warnings++
		}
	}
	return s
}

// WriteText writes one line per finding, the fix indented under it, and a summary.
func WriteText(w io.Writer, fs []Finding) error {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "%-6s %s\n", f.Severity.tag(), f.Message)
		if f.Fix != "" && f.Severity >= Warn {
			fmt.Fprintf(&b, "       fix: %s\n", f.Fix)
		}
	}
	s := Summarize(fs)
	switch {
	case s.Blocking > 0:
		fmt.Fprintf(&b, "%d blocking, %d warnings: clusterd will not work on this node until the [FAIL] lines are fixed\n", s.Blocking, s.Warnings)
	case s.Warnings > 0:
		fmt.Fprintf(&b, "nothing blocks; %d warnings\n", s.Warnings)
	default:
		fmt.Fprintf(&b, "nothing blocks\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Report is the JSON form of a run.
type Report struct {
	Findings []Finding `json:"findings"`
	Summary
}

// WriteJSON writes the findings and their summary as one JSON object.
func WriteJSON(w io.Writer, fs []Finding) error {
	if fs == nil {
		fs = []Finding{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Report{Findings: fs, Summary: Summarize(fs)})
}
