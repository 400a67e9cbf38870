package netbios

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/clusterd/clusterd/netbios/nbns"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in     string
		want   nbns.Name
		errHas []string // substrings the error must contain; nil = no error
	}{
		{"FILESRV<20>", nbns.Name{Label: "FILESRV", Suffix: 0x20}, nil},
		{"filesrv<1B>", nbns.Name{Label: "FILESRV", Suffix: 0x1b}, nil},
		{"corp-dc.01<1c>", nbns.Name{Label: "CORP-DC.01", Suffix: 0x1c}, nil},
		{"FIFTEEN-CHARS-X<00>", nbns.Name{Label: "FIFTEEN-CHARS-X"}, nil},
		{"SIXTEEN-CHARS-XX<00>", nbns.Name{}, []string{`"SIXTEEN-CHARS-XX<00>"`, "16 characters", "limit 15", "shorten"}},
		{"FILESRV", nbns.Name{}, []string{`"FILESRV"`, "no suffix", "FILESRV<20>"}},
		{"FILESRV<2>", nbns.Name{}, []string{`"FILESRV<2>"`, "two hex digits"}},
		{"FILESRV<200>", nbns.Name{}, []string{"two hex digits"}},
		{"FILESRV<zz>", nbns.Name{}, []string{`"zz"`, "00-ff"}},
		{"FILESRV<20", nbns.Name{}, []string{"angle brackets"}},
		{"FILESRV<20>x", nbns.Name{}, []string{"angle brackets"}},
		{"<20>", nbns.Name{}, []string{"empty", "1 to 15 characters"}},
		{"FILE SRV<20>", nbns.Name{}, []string{`" "`, "position 5", "without spaces"}},
		{"FILE*<20>", nbns.Name{}, []string{`"*"`, "position 5"}},
		{"FILE/SRV<20>", nbns.Name{}, []string{`"/"`}},
		{"FILÉ<20>", nbns.Name{}, []string{"printable ASCII"}},
		{".HIDDEN<20>", nbns.Name{}, []string{"period"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseName(tt.in)
			if tt.errHas == nil {
				if err != nil || got != tt.want {
					t.Fatalf("ParseName(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
				}
				if back, err := ParseName(got.String()); err != nil || back != got {
					t.Errorf("ParseName(%q) = %v, %v; want %v (String round trip)", got.String(), back, err, got)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseName(%q) = %v, nil; want an error", tt.in, got)
			}
			if !errors.Is(err, ErrName) {
				t.Errorf("ParseName(%q) error %q does not wrap ErrName", tt.in, err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("ParseName(%q) error %q does not mention %q", tt.in, err, s)
				}
			}
		})
	}
}

func TestExpandNames(t *testing.T) {
	n := func(l string, s byte) nbns.Name { return nbns.Name{Label: l, Suffix: s} }
	tests := []struct {
		name   string
		in     []string
		want   []nbns.Name
		errHas []string
	}{
		{"bare name is the server pair", []string{"filesrv"}, []nbns.Name{n("FILESRV", 0), n("FILESRV", 0x20)}, nil},
		{"suffix as written", []string{"CORP<1b>"}, []nbns.Name{n("CORP", 0x1b)}, nil},
		{"duplicates removed in order", []string{"A<20>", "a", "B<03>", "A<00>"}, []nbns.Name{n("A", 0x20), n("A", 0), n("B", 3)}, nil},
		{"none", nil, nil, nil},
		{"every bad name reported", []string{"GOOD", "SIXTEEN-CHARS-XX", "BAD<x>"},
			nil, []string{`"SIXTEEN-CHARS-XX"`, "limit 15", `"BAD<x>"`}},
		{"bare name with bad character", []string{"A|B"}, nil, []string{`"|"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ExpandNames(tt.in)
			if tt.errHas == nil {
				if err != nil || !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("ExpandNames(%q) = %v, %v; want %v, nil", tt.in, got, err, tt.want)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrName) {
				t.Fatalf("ExpandNames(%q) = %v, %v; want an ErrName error", tt.in, got, err)
			}
			for _, s := range tt.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("ExpandNames(%q) error %q does not mention %q", tt.in, err, s)
				}
			}
		})
	}
}

func TestParseNodeType(t *testing.T) {
	tests := []struct {
		in   string
		wins bool
		want nbns.NodeType
		err  bool
	}{
		{"", true, nbns.HNode, false},
		{"", false, nbns.BNode, false},
		{"h", false, nbns.HNode, false},
		{"P", true, nbns.PNode, false},
		{"m", true, nbns.MNode, false},
		{"b", true, nbns.BNode, false},
		{"x", true, 0, true},
		{"hnode", true, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseNodeType(tt.in, tt.wins)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseNodeType(%q, %v) = %v, %v; want %v, error %v", tt.in, tt.wins, got, err, tt.want, tt.err)
		}
		if err != nil && !strings.Contains(err.Error(), `"`+tt.in+`"`) {
			t.Errorf("ParseNodeType(%q) error %q does not name the value", tt.in, err)
		}
	}
}
