package doctor

import (
	"strings"
	"testing"
)

func TestInterfaces(t *testing.T) {
	have := map[string]Link{"lo": {Up: true, Running: true}, "eth0": {Up: true, Running: true}, "eth1": {Up: false}, "eth2": {Up: true}}
	tests := []struct {
		want     Interface
		sev      Severity
		wantText string
	}{
		{Interface{Name: "eth0", By: []string{"resource web"}}, OK, "eth0 exists and is up (named by resource web)"},
		{Interface{Name: "eth9", By: []string{"resource web", "resource db"}}, Fail, "eth9 does not exist on this node (named by resource web, resource db)"},
		{Interface{Name: "eth9"}, Fail, "existing: eth0, eth1, eth2, lo"},
		{Interface{Name: "eth1"}, Warn, "ip link set eth1 up"},
		{Interface{Name: "eth2"}, Warn, "no carrier"},
	}
	for _, tt := range tests {
		fs := Interfaces([]Interface{tt.want}, have)
		if len(fs) != 1 {
			t.Fatalf("Interfaces(%+v) = %d findings, want 1", tt.want, len(fs))
		}
		f := fs[0]
		if f.Severity != tt.sev || !strings.Contains(f.Message+" | "+f.Fix, tt.wantText) {
			t.Errorf("Interfaces(%+v) = %v %q (fix %q); want %v containing %q", tt.want, f.Severity, f.Message, f.Fix, tt.sev, tt.wantText)
		}
	}
}
