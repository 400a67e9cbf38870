package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/test/cluster"
	"github.com/clusterd/clusterd/test/lab"
)

// TestAuth: every /v1/ call needs the cluster token; without it or with a wrong one
// the answer is 401 and nothing changes. /healthz, /readyz and /metrics stay open.
func TestAuth(t *testing.T) {
	ctx := context.Background()
	c, a := single(t)
	hc := c.HTTP(a.Host, 5*time.Second)
	body := `{"name":"web","address":"198.18.1.10/16","interface":"eth0"}`
	tests := []struct {
		name, method, path, body, token string
		want                            int
	}{
		{"write without token", "POST", "/v1/resources", body, "", 401},
		{"write with wrong token", "POST", "/v1/resources", body, "0123456789abcdef0123", 401},
		{"read without token", "GET", "/v1/status", "", "", 401},
		{"events without token", "GET", "/v1/events", "", "", 401},
		{"peer view without token", "GET", "/v1/local", "", "", 401},
		{"join without token", "POST", "/v1/join", `{"id":"evil","raft_addr":"198.18.0.250:7401","api_addr":"198.18.0.250:7400","voter":true}`, "", 401},
		{"healthz open", "GET", "/healthz", "", "", 200},
		{"readyz open", "GET", "/readyz", "", "", 200},
		{"metrics open", "GET", "/metrics", "", "", 200},
		{"read with token", "GET", "/v1/status", "", c.Token(), 200},
		{"write with token", "POST", "/v1/resources", body, c.Token(), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(ctx, tt.method, a.URL()+tt.path, strings.NewReader(tt.body))
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+tt.token)
			}
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("%s %s: got %d, want %d: %s", tt.method, tt.path, resp.StatusCode, tt.want, b.String())
			}
			if tt.want == 401 && !strings.Contains(b.String(), "token") {
				t.Errorf("401 body does not say what is missing: %s", b.String())
			}
		})
	}
	st, err := c.Client(a).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Resources) != 1 || len(st.Nodes) != 1 {
		t.Errorf("unauthenticated calls changed the state: %d resources, %d nodes", len(st.Resources), len(st.Nodes))
	}
	// The CLI with a wrong token fails with the reason.
	cmd := a.Host.Command(ctx, bin, "--api", a.URL(), "--token", "wrongwrongwrongwrong", "status")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "missing or wrong cluster token") {
		t.Errorf("CLI with a wrong token: %v %s", err, out)
	}
	info, err := os.Stat(filepath.Join(a.DataDir, "token"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("DATA_DIR/token: %v, mode %v; want 0600", err, info.Mode())
	}
}

// TestMetricsAndEvents: /metrics passes promtool, and a failover shows up in the
// events with its timeline and in the phase histograms.
func TestMetricsAndEvents(t *testing.T) {
	ctx := context.Background()
	c, holder, _ := safetyCluster(t, "")
	survivorAgent := survivor(c, holder)
	if err := c.Kill(holder); err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitHolder(mustAddr("198.18.1.10"), 10*time.Second, holder.Host); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	var out string
	for {
		out, _ = c.CLI(ctx, survivorAgent, "events")
		if strings.Contains(out, "1135") && strings.Contains(out, "first_announcement") && strings.Contains(out, "committed") || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, want := range []string{"1135", "is down: no lease renewal", "failover of 1 resources from " + holder.ID, "timeline: assigned", "address_up", "first_announcement"} {
		if !strings.Contains(out, want) {
			t.Errorf("events lack %q:\n%s", want, out)
		}
	}
	// Metrics from every live node pass promtool and carry the phases.
	var all string
	for i := 1; i <= 3; i++ {
		a := c.Agent(i, cluster.Options{})
		if a == holder {
			continue
		}
		resp, err := c.HTTP(a.Host, 5*time.Second).Get(a.URL() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		check := exec.Command("promtool", "check", "metrics")
		check.Stdin = bytes.NewReader(b.Bytes())
		if res, err := check.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on %s: %v\n%s", a.ID, err, res)
		}
		all += b.String()
	}
	for _, want := range []string{`clusterd_failover_phase_seconds_count{phase="detect"} 1`, `clusterd_failover_phase_seconds_count{phase="address_up"} 1`,
		"clusterd_addresses_held 1", "clusterd_raft_leader 1", "clusterd_lease_renewals_sent_total", `clusterd_events_total{id="1135"} 1`} {
		if !strings.Contains(all, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	// events -o json is JSON.
	js, err := c.CLI(ctx, survivorAgent, "events", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(js))
	var ev map[string]any
	if err := dec.Decode(&ev); err != nil || ev["id"] == nil {
		t.Errorf("events -o json: %v %s", err, js)
	}
}

// TestReadyzWhenCutOff: /readyz answers 503 with the lease line when the node is
// cut off from the voters, and 200 again after the heal.
func TestReadyzWhenCutOff(t *testing.T) {
	c, holder, _ := safetyCluster(t, "")
	var others []*lab.Host
	for _, h := range c.Lab.Nodes() {
		if h != holder.Host {
			others = append(others, h)
		}
	}
	get := func() (int, string) {
		resp, err := c.HTTP(holder.Host, 2*time.Second).Get(holder.URL() + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		b.ReadFrom(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, b.String()
	}
	if code, body := get(); code != 200 {
		t.Fatalf("readyz before the partition: %d\n%s", code, body)
	}
	if err := holder.Host.Partition(others...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		code, body := get()
		if code == 503 && strings.Contains(body, "[-] lease failed: cut off from a majority of voters") {
			t.Logf("readyz when cut off:\n%s", body)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz when cut off: %d\n%s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	holder.Host.Heal()
	deadline = time.Now().Add(10 * time.Second)
	for {
		if code, _ := get(); code == 200 {
			break
		}
		if time.Now().After(deadline) {
			code, body := get()
			t.Fatalf("readyz after the heal: %d\n%s", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
