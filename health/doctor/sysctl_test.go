package doctor

import (
	"strings"
	"testing"
)

// find returns the finding about subject, or fails the test.
func find(t *testing.T, fs []Finding, subject string) Finding {
	t.Helper()
	for _, f := range fs {
		if f.Subject == subject {
			return f
		}
	}
	t.Fatalf("no finding about %q in %+v", subject, fs)
	return Finding{}
}

func TestInterfaceSysctls(t *testing.T) {
	tests := []struct {
		name      string
		all, dev  Conf
		v6        bool
		subject   string
		want      Severity
		wantInFix string
	}{
		{"arp_ignore default", Conf{}, Conf{}, false, "net.ipv4.conf.eth0.arp_ignore", OK, ""},
		{"arp_ignore 1", Conf{}, Conf{ArpIgnore: 1}, false, "net.ipv4.conf.eth0.arp_ignore", OK, ""},
		{"arp_ignore 3", Conf{}, Conf{ArpIgnore: 3}, false, "net.ipv4.conf.eth0.arp_ignore", OK, ""},
		{"arp_ignore 8 on the interface", Conf{}, Conf{ArpIgnore: 8}, false, "net.ipv4.conf.eth0.arp_ignore", Fail, "sysctl -w net.ipv4.conf.eth0.arp_ignore=1 "},
		{"arp_ignore 8 in all", Conf{ArpIgnore: 8}, Conf{}, false, "net.ipv4.conf.eth0.arp_ignore", Fail, "sysctl -w net.ipv4.conf.all.arp_ignore=1 "},
		{"arp_ignore 8 in both", Conf{ArpIgnore: 8}, Conf{ArpIgnore: 8}, false, "net.ipv4.conf.eth0.arp_ignore", Fail, "net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.eth0.arp_ignore=1"},
		{"arp_ignore 2 (max of all)", Conf{ArpIgnore: 2}, Conf{ArpIgnore: 1}, false, "net.ipv4.conf.eth0.arp_ignore", Warn, "net.ipv4.conf.all.arp_ignore=1"},
		{"promote off", Conf{}, Conf{}, false, "net.ipv4.conf.eth0.promote_secondaries", Info, ""},
		{"promote on in all", Conf{PromoteSecondaries: 1}, Conf{}, false, "net.ipv4.conf.eth0.promote_secondaries", OK, ""},
		{"promote on", Conf{}, Conf{PromoteSecondaries: 1}, false, "net.ipv4.conf.eth0.promote_secondaries", OK, ""},
		{"arp_announce 2", Conf{}, Conf{ArpAnnounce: 2}, false, "net.ipv4.conf.eth0.arp_announce", OK, ""},
		{"arp_filter", Conf{ArpFilter: 1}, Conf{}, false, "net.ipv4.conf.eth0.arp_filter", Info, ""},
		{"ipv6 on", Conf{}, Conf{}, true, "net.ipv6.conf.eth0.disable_ipv6", OK, ""},
		{"ipv6 off", Conf{}, Conf{DisableIPv6: 1}, true, "net.ipv6.conf.eth0.disable_ipv6", Fail, "sysctl -w net.ipv6.conf.eth0.disable_ipv6=0"},
		{"no ipv6 in the kernel", Conf{}, Conf{DisableIPv6: -1}, true, "net.ipv6.conf.eth0.disable_ipv6", Fail, "ipv6.disable=1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := InterfaceSysctls("eth0", tt.all, tt.dev, tt.v6)
			f := find(t, fs, tt.subject)
			if f.Severity != tt.want {
				t.Errorf("all=%+v dev=%+v: %s is %v (%q), want %v", tt.all, tt.dev, tt.subject, f.Severity, f.Message, tt.want)
			}
			if tt.wantInFix != "" && !strings.Contains(f.Fix, tt.wantInFix) {
				t.Errorf("all=%+v dev=%+v: fix %q does not contain %q", tt.all, tt.dev, f.Fix, tt.wantInFix)
			}
			if f.Severity >= Warn && f.Fix == "" {
				t.Errorf("%s: %v finding without a fix: %q", tt.subject, f.Severity, f.Message)
			}
		})
	}
}

func TestInterfaceSysctlsDisableIPv6IgnoredWithoutV6(t *testing.T) {
	for _, f := range InterfaceSysctls("eth0", Conf{}, Conf{DisableIPv6: 1}, false) {
		if strings.Contains(f.Subject, "disable_ipv6") {
			t.Errorf("disable_ipv6 reported for an interface without IPv6 cluster addresses: %+v", f)
		}
	}
}

func TestNonlocalBind(t *testing.T) {
	if got := NonlocalBind(0); got.Severity != OK {
		t.Errorf("NonlocalBind(0) = %+v, want ok", got)
	}
	got := NonlocalBind(1)
	if got.Severity != Warn || !strings.Contains(got.Fix, "net.ipv4.ip_nonlocal_bind=0") {
		t.Errorf("NonlocalBind(1) = %+v, want a warning whose fix sets it to 0", got)
	}
}
