package main

import (
	"bufio"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
)

// counters reads the agent's Prometheus counters whose names are listed (GET
// /metrics, text format, samples without labels).
func counters(ctx context.Context, c *cluster.Cluster, a *cluster.Agent, names ...string) (map[string]float64, error) {
	hc := c.HTTP(a.Host, 2*time.Second)
	resp, err := hc.Get(a.URL() + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		name, val, ok := parseSample(sc.Text())
		if ok && want[name] {
			out[name] = val
		}
	}
	return out, sc.Err()
}

// parseSample splits a Prometheus text sample "name value" (no labels).
func parseSample(line string) (string, float64, bool) {
	if strings.HasPrefix(line, "#") {
		return "", 0, false
	}
	f := strings.Fields(line)
	if len(f) < 2 || strings.ContainsRune(f[0], '{') {
		return "", 0, false
	}
	v, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		return "", 0, false
	}
	return f[0], v, true
}

const renewalsSent = "clusterd_lease_renewals_sent_total"

// renewalRates samples every agent's renewals-sent counter at the start and returns
// a function giving each one's rate since then, per second.
func renewalRates(ctx context.Context, c *cluster.Cluster, agents []*cluster.Agent) func() map[string]float64 {
	start := time.Now()
	first := map[string]float64{}
	for _, a := range agents {
		if m, err := counters(ctx, c, a, renewalsSent); err == nil {
			first[a.ID] = m[renewalsSent]
		}
	}
	return func() map[string]float64 {
		out := map[string]float64{}
		secs := time.Since(start).Seconds()
		for _, a := range agents {
			if m, err := counters(ctx, c, a, renewalsSent); err == nil {
				out[a.ID] = (m[renewalsSent] - first[a.ID]) / secs
			}
		}
		return out
	}
}

func rateNote(r map[string]float64) string {
	var parts []string
	for _, id := range sortedKeys(r) {
		parts = append(parts, fmt.Sprintf("%s %.0f/s", id, r[id]))
	}
	return strings.Join(parts, ", ")
}

func maxRate(r map[string]float64) float64 {
	m := 0.0
	for _, v := range r {
		m = max(m, v)
	}
	return m
}
