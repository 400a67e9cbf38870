package doctor

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/health/api"
)

func TestClusterAddStatus(t *testing.T) {
	st := api.Status{
		Leader: "n1", Self: "n1",
		Nodes: []api.NodeStatus{
			{ID: "n1", State: "up", Leader: true, RaftAddr: "192.0.2.1:7401", APIAddr: "192.0.2.1:7400"},
			{ID: "n2", State: "up", RaftAddr: "192.0.2.2:7401", APIAddr: "192.0.2.2:7400"},
			{ID: "n3", State: "down", RaftAddr: "192.0.2.3:7401"},
		},
		Resources: []api.ResourceStatus{
			{Name: "web", Address: "192.0.2.10/24", Interface: "eth0"},
			{Name: "db", Address: "192.0.2.11/24", Interface: "eth0"},
			{Name: "v6", Address: "2001:db8::10/64", Interface: "eth1"},
			{Name: "bad", Address: "nonsense", Interface: "eth2"},
		},
	}
	var c Cluster
	c.AddInterface("eth0", "--interface", false)
	err := c.AddStatus(st, "")
	if err == nil || !strings.Contains(err.Error(), `resource bad: address "nonsense"`) {
		t.Errorf("AddStatus error = %v, want one naming resource bad", err)
	}
	wantIfs := []Interface{
		{Name: "eth0", By: []string{"--interface", "resource web", "resource db"}},
		{Name: "eth1", By: []string{"resource v6"}, V6: true},
	}
	if !reflect.DeepEqual(c.Interfaces, wantIfs) {
		t.Errorf("interfaces = %+v, want %+v", c.Interfaces, wantIfs)
	}
	if got := fmt.Sprint(c.Addresses); got != "[192.0.2.10 192.0.2.11 2001:db8::10]" {
		t.Errorf("addresses = %s", got)
	}
	wantPeers := []Endpoint{
		{Node: "n2", Kind: "raft", Addr: "192.0.2.2:7401", State: "up"},
		{Node: "n2", Kind: "api", Addr: "192.0.2.2:7400", State: "up"},
		{Node: "n3", Kind: "raft", Addr: "192.0.2.3:7401", State: "down"},
	}
	if !reflect.DeepEqual(c.Peers, wantPeers) {
		t.Errorf("peers = %+v, want %+v", c.Peers, wantPeers)
	}

	var other Cluster
	other.AddStatus(st, "n2") // doctor runs on n2, asked n1's API
	if len(other.Peers) != 3 || other.Peers[0].Node != "n1" || !other.Peers[1].Leader {
		t.Errorf("peers seen from n2 = %+v, want n1 raft, n1 api (leader), n3 raft", other.Peers)
	}
}

func TestReadRecord(t *testing.T) {
	dir := t.TempDir()
	got, err := ReadRecord(dir)
	if err != nil || got != nil {
		t.Fatalf("ReadRecord(empty dir) = %v, %v; want nothing", got, err)
	}
	// The format resource/statefile.go writes.
	os.WriteFile(filepath.Join(dir, "addresses.json"), []byte(`{
  "version": 1,
  "addresses": [
    {"address": "192.0.2.10/24", "interface": "eth0"},
    {"address": "2001:db8::10/64", "interface": "eth1"}
  ]
}
`), 0o600)
	got, err = ReadRecord(dir)
	want := []Recorded{{netip.MustParsePrefix("192.0.2.10/24"), "eth0"}, {netip.MustParsePrefix("2001:db8::10/64"), "eth1"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadRecord = %v, %v; want %v", got, err, want)
	}
	var c Cluster
	c.AddRecord(got)
	if len(c.Interfaces) != 2 || !c.Interfaces[1].V6 || len(c.Addresses) != 2 {
		t.Errorf("AddRecord gave %+v", c)
	}
	if f := RecordFinding(dir, got, nil); f.Severity != Info || !strings.Contains(f.Message, "192.0.2.10/24 on eth0") {
		t.Errorf("RecordFinding = %+v", f)
	}

	os.WriteFile(filepath.Join(dir, "addresses.json"), []byte(`{"version": 2}`), 0o600)
	if _, err := ReadRecord(dir); err == nil || !strings.Contains(err.Error(), "version 2") {
		t.Errorf("ReadRecord(version 2) error = %v", err)
	}
	os.WriteFile(filepath.Join(dir, "addresses.json"), []byte(`{`), 0o600)
	_, err = ReadRecord(dir)
	if f := RecordFinding(dir, nil, err); err == nil || f.Severity != Warn || f.Fix == "" {
		t.Errorf("corrupt record: error %v, finding %+v", err, f)
	}
}

func TestAPIFinding(t *testing.T) {
	tests := []struct {
		name string
		st   api.Status
		err  error
		want Severity
		text string
	}{
		{"answers", api.Status{Self: "n1", Leader: "n1", Nodes: make([]api.NodeStatus, 3)}, nil, OK, "leader n1, 3 nodes"},
		{"no leader", api.Status{Self: "n1", Nodes: make([]api.NodeStatus, 3)}, nil, Warn, "no raft leader"},
		{"unreachable", api.Status{}, fmt.Errorf("%w: connection refused", api.ErrUnreachable), Warn, "no agent answered"},
		{"refused", api.Status{}, &api.StatusError{Code: 401, Msg: "token required"}, Warn, "token required"},
	}
	for _, tt := range tests {
		f := APIFinding("http://192.0.2.1:7400", tt.st, tt.err)
		if f.Severity != tt.want || !strings.Contains(f.Message, tt.text) || (f.Severity == Warn && f.Fix == "") {
			t.Errorf("%s: APIFinding = %+v, want %v containing %q", tt.name, f, tt.want, tt.text)
		}
	}
}
