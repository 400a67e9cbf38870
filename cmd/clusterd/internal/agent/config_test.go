package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadFileErrorsNameTheLine(t *testing.T) {
	tests := []struct {
		name, toml, want string
	}{
		{"unknown key", "node_id = \"n1\"\ndata_dir = \"/tmp/x\"\nraft_adr = \"198.18.0.101:7401\"\n", "line 3: unknown key \"raft_adr\""},
		{"syntax", "node_id = \"n1\"\ndata_dir = /tmp/x\n", "line 2"},
		{"wrong type", "node_id = \"n1\"\nbootstrap = \"yes\"\n", "bootstrap"},
		{"bad raft address", "node_id = \"n1\"\ndata_dir = \"/tmp/x\"\nraft_addr = \"nowhere\"\napi_addr = \"127.0.0.1:7400\"\nbootstrap = true\n", "line 3 (raft_addr): address \"nowhere\" is not HOST:PORT"},
		{"bad profile", "node_id = \"n1\"\ndata_dir = \"/tmp/x\"\nraft_addr = \"127.0.0.1:7401\"\nprofile = \"turbo\"\nbootstrap = true\n", "line 4 (profile): timer profile \"turbo\""},
		{"bootstrap and join", "node_id = \"n1\"\ndata_dir = \"/tmp/x\"\nraft_addr = \"127.0.0.1:7401\"\nbootstrap = true\njoin = \"http://198.18.0.101:7400\"\n", "line 5 (join): both bootstrap and join"},
		{"bad realtime priority", "node_id = \"n1\"\ndata_dir = \"/tmp/x\"\nraft_addr = \"127.0.0.1:7401\"\nrealtime_priority = 100\n", "line 4 (realtime_priority): real-time priority 100 is not 0-99"},
		{"bad node id", "node_id = \"no spaces\"\ndata_dir = \"/tmp/x\"\nraft_addr = \"127.0.0.1:7401\"\n", "line 1 (node_id)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "clusterd.toml")
			if err := os.WriteFile(path, []byte(tt.toml), 0o644); err != nil {
				t.Fatal(err)
			}
			cfg, err := LoadFile(path)
			if err == nil {
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("config %q: got error %v, want one containing %q", tt.toml, err, tt.want)
			}
		})
	}
}

func TestLoadFileGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clusterd.toml")
	os.WriteFile(path, []byte("node_id = \"n1\"\ndata_dir = \"/var/lib/clusterd\"\nraft_addr = \"198.18.0.101:7401\"\napi_addr = \"198.18.0.101:7400\"\njoin = \"198.18.0.102:7400\"\nvoter = false\n"), 0o644)
	cfg, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Join != "http://198.18.0.102:7400" || cfg.IsVoter() || cfg.Profile != "default" || cfg.RTPriority() != DefaultRealtimePriority {
		t.Fatalf("got %+v", cfg)
	}
}

// TestProfileInvariants: every profile keeps the relations the lease protocol and
// raft rely on.
func TestProfileInvariants(t *testing.T) {
	for _, p := range []string{"default", "fast", "relaxed"} {
		tm := ProfileTimers(p)
		checks := []struct {
			ok   bool
			what string
		}{
			{tm.Renew*4 <= tm.Lease, "at least 4 renewals per lease (a lost datagram or two must not end it)"},
			{tm.Guard < tm.Lease/2 && tm.Margin < tm.Lease/2, "guard and margin well inside the lease"},
			{fenceLead(tm) >= tm.Renew, "the companion's lead covers a renewal period"},
			{tm.LeaderLease <= tm.Heartbeat, "raft: leader lease at most the heartbeat timeout"},
			{tm.Probe > 0 && tm.Probe < tm.Lease, "takeover probe shorter than a lease"},
		}
		for _, c := range checks {
			if !c.ok {
				t.Errorf("profile %s (%+v): want %s", p, tm, c.what)
			}
		}
	}
	if d, r := ProfileTimers("default"), ProfileTimers("relaxed"); r.Lease <= d.Lease || r.Renew <= d.Renew {
		t.Errorf("relaxed %+v is not slower than default %+v", r, d)
	}
}
