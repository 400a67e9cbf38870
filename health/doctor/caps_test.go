package doctor

import (
	"strings"
	"testing"
)

func TestParseCapEff(t *testing.T) {
	tests := []struct {
		name    string
		status  string
		want    uint64
		wantErr string
	}{
		{"root", "Name:\tbash\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\nCapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n", 0x1ffffffffff, ""},
		{"three caps", "CapEff:\t0000000000003400\n", 1<<10 | 1<<12 | 1<<13, ""},
		{"none", "CapEff:\t0000000000000000\n", 0, ""},
		{"no line", "Name:\tx\nCapPrm:\t0000000000003400\n", 0, "no CapEff line"},
		{"not hex", "CapEff:\tzz\n", 0, `CapEff "zz"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCapEff([]byte(tt.status))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCapEff(%q) error = %v, want one containing %q", tt.status, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCapEff(%q) = %#x, %v; want %#x", tt.status, got, err, tt.want)
			}
		})
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name       string
		eff        uint64
		unpriv     int
		wantFailed []string
	}{
		{"all three", 1<<10 | 1<<12 | 1<<13, 1024, nil},
		{"root", 0x1ffffffffff, 1024, nil},
		{"none", 0, 1024, []string{"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"}},
		{"no raw", 1<<10 | 1<<12, 1024, []string{"CAP_NET_RAW"}},
		{"no bind, low ports open", 1<<12 | 1<<13, 0, nil},
		{"no bind, ports from 138", 1<<12 | 1<<13, 138, []string{"CAP_NET_BIND_SERVICE"}},
		{"no bind, ports from 137", 1<<12 | 1<<13, 137, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := Capabilities(tt.eff, tt.unpriv)
			if len(fs) != 3 {
				t.Fatalf("Capabilities(%#x) gave %d findings, want 3: %+v", tt.eff, len(fs), fs)
			}
			var failed []string
			for _, f := range fs {
				if f.Severity == Fail {
					failed = append(failed, f.Subject)
					if !strings.Contains(f.Fix, "AmbientCapabilities=") || !strings.Contains(f.Message, f.Subject) {
						t.Errorf("finding %+v: want the capability in the message and AmbientCapabilities= in the fix", f)
					}
				}
			}
			if strings.Join(failed, ",") != strings.Join(tt.wantFailed, ",") {
				t.Errorf("Capabilities(%#x, %d) failed %v, want %v", tt.eff, tt.unpriv, failed, tt.wantFailed)
			}
		})
	}
}
