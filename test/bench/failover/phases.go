package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Phases splits a clusterd failover by the agents' own timeline (event 1201): the
// leader logs when it last heard the old holder, when it planned the failover and
// when the assignment committed; the new holder logs when it saw the assignment and
// when the address was up. Times are milliseconds between those instants (the agents
// share the machine's clock).
type Phases struct {
	DetectMS float64 `json:"detect_ms"` // last renewal heard → failover planned (Lease+Margin, or a raft election)
	CommitMS float64 `json:"commit_ms"` // planned → committed on the leader
	ApplyMS  float64 `json:"apply_ms"`  // committed → the new holder saw it (a follower learns commits late)
	UpMS     float64 `json:"up_ms"`     // seen → address added (lease confirmation, takeover probe)
}

var logfmtPair = regexp.MustCompile(`(\w+)=("[^"]*"|\S+)`)

// readPhases finds the failover timeline in the agents' logs in dir (lab logs named
// NODE-clusterd-N.log); nil if there is none (keepalived, a graceful move).
func readPhases(dir string) *Phases {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	var leader map[string]string
	var holders []map[string]string
	for _, path := range logs {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			if !strings.Contains(line, "event=1201") {
				continue
			}
			kv := map[string]string{}
			for _, m := range logfmtPair.FindAllStringSubmatch(line, -1) {
				kv[m[1]] = strings.Trim(m[2], `"`)
			}
			switch {
			case kv["last_renewal"] != "":
				leader = kv
			case kv["assigned"] != "":
				holders = append(holders, kv)
			}
		}
		f.Close()
	}
	if leader == nil {
		return nil
	}
	at := func(kv map[string]string, key string) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, kv[key])
		return t
	}
	committed := at(leader, "committed")
	// The new holder's timeline is the first one that starts at or after the commit
	// (a millisecond of slack: the leader stamps its commit after Apply returns).
	slices.SortFunc(holders, func(a, b map[string]string) int { return at(a, "assigned").Compare(at(b, "assigned")) })
	for _, h := range holders {
		seen := at(h, "assigned")
		if seen.Before(committed.Add(-time.Millisecond)) {
			continue
		}
		return &Phases{
			DetectMS: ms(at(leader, "detected").Sub(at(leader, "last_renewal"))),
			CommitMS: ms(committed.Sub(at(leader, "detected"))),
			ApplyMS:  ms(seen.Sub(committed)),
			UpMS:     ms(at(h, "address_up").Sub(seen)),
		}
	}
	return nil
}
