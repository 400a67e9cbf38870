package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// logLine is one line of an agent's text log (log/slog's TextHandler: key=value
// pairs, values with spaces quoted).
type logLine struct {
	At     time.Time
	Node   string // from the log file's name (n1-clusterd-3.log → n1)
	Msg    string
	Fields map[string]string
}

// parseLogLine splits a slog text line into its fields; ok is false if it has no
// parsable time.
func parseLogLine(s string) (logLine, bool) {
	f := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			break
		}
		key, rest := s[:eq], s[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			end := closingQuote(rest)
			if end < 0 {
				break
			}
			v, err := strconv.Unquote(rest[:end+1])
			if err != nil {
				break
			}
			val, s = v, rest[end+1:]
		} else {
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				sp = len(rest)
			}
			val, s = rest[:sp], rest[sp:]
		}
		f[key] = val
	}
	at, err := time.Parse(time.RFC3339Nano, f["time"])
	if err != nil {
		return logLine{}, false
	}
	return logLine{At: at, Msg: f["msg"], Fields: f}, true
}

// closingQuote returns the index of the quote that ends the quoted string at s[0].
func closingQuote(s string) int {
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// scanLogs reads every agent log in dir (NODE-clusterd-N.log) and returns the lines
// at or after since that match, in time order.
func scanLogs(dir string, since time.Time, match func(logLine) bool) ([]logLine, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*-clusterd-*.log"))
	if err != nil {
		return nil, err
	}
	var out []logLine
	for _, p := range paths {
		node, _, _ := strings.Cut(filepath.Base(p), "-")
		fh, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(fh)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			l, ok := parseLogLine(sc.Text())
			if ok && !l.At.Before(since) {
				l.Node = node
				if match(l) {
					out = append(out, l)
				}
			}
		}
		fh.Close()
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].At.Before(out[j].At) })
	return out, nil
}

// leaseTrouble is what the logs say about lease losses since a time.
type leaseTrouble struct {
	down   []string // "n3 +553ms": nodes the leader declared down (event 1135)
	lost   []string // nodes that lost leases they held (event 1177)
	fenced []string // fencing companions that removed addresses
}

func findLeaseTrouble(dir string, since time.Time) (leaseTrouble, error) {
	var t leaseTrouble
	lines, err := scanLogs(dir, since, func(l logLine) bool {
		return l.Fields["event"] == "1135" || l.Fields["event"] == "1177" || strings.HasPrefix(l.Msg, "fence: removed")
	})
	if err != nil {
		return t, err
	}
	for _, l := range lines {
		rel := fmt.Sprintf("+%.0fms", ms(l.At.Sub(since)))
		switch {
		case l.Fields["event"] == "1135":
			down, _, _ := strings.Cut(strings.TrimPrefix(l.Msg, "node "), " ")
			t.down = append(t.down, down+" "+rel)
		case l.Fields["event"] == "1177":
			t.lost = append(t.lost, l.Node+" "+rel)
		default:
			t.fenced = append(t.fenced, l.Node+" "+rel+" ("+l.Fields["count"]+")")
		}
	}
	return t, nil
}

// leaseHealth records the lease troubles of a phase: nodes declared down other than
// the expected one, leases lost, fencing companions that fired.
func (e *env) leaseHealth(cs, phase, labDir string, since time.Time, expectDown string) {
	t, err := findLeaseTrouble(labDir, since)
	cmd := "agent logs: events 1135 (node down) and 1177 (lease lost), fence removals"
	name := "nodes wrongly declared down " + phase
	if err != nil {
		e.failed(cs, name, "nodes", 0, cmd, err)
		return
	}
	var wrong []string
	for _, d := range t.down {
		if !strings.HasPrefix(d, expectDown+" ") || expectDown == "" {
			wrong = append(wrong, d)
		}
	}
	e.fig(cs, name, float64(len(wrong)), "nodes", 0, cmd, fmt.Sprintf("declared down: %v; the benchmark's own 10 ms ticker ran up to %.0f ms late in this phase (machine load %.1f)", t.down, ms(e.lag.take()), loadavg()))
	e.fig(cs, "leases lost (event 1177) "+phase, float64(len(t.lost)), "events", 0, cmd,
		fmt.Sprintf("lost on: %v; fencing companions that removed addresses (count): %v", t.lost, t.fenced))
}
