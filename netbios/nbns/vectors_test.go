package nbns

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// vector is one captured packet of ../../shared/vectors/nbns-samba-4.17.txt.
type vector struct {
	num     int
	title   string
	origin  string
	decoded []string // the "decoded:" block, one line per header/question/record line
	wire    []byte
}

// samba reports whether the packet was sent by Samba (nmbd or nmblookup) rather than
// by the lab's Python probe.
func (v vector) samba() bool { return !strings.Contains(v.origin, "lab probe") }

// vectorsFile finds shared/vectors/nbns-samba-4.17.txt by walking up from the package
// directory: it lives beside the repository root (/work/shared next to /work/main).
func vectorsFile(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "shared", "vectors", "nbns-samba-4.17.txt")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		if filepath.Dir(d) == d {
			break
		}
	}
	t.Fatalf("test vectors not found: looked for shared/vectors/nbns-samba-4.17.txt in every parent of %s "+
		"(the shared directory sits beside the repository root, e.g. /work/shared next to /work/main)", dir)
	return ""
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	path := vectorsFile(t)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		out     []vector
		cur     *vector
		inBlock bool
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "### "):
			num, title, ok := strings.Cut(strings.TrimPrefix(line, "### "), ". ")
			n, err := strconv.Atoi(num)
			if !ok || err != nil {
				t.Fatalf("%s: bad vector heading %q", path, line)
			}
			out = append(out, vector{num: n, title: title})
			cur, inBlock = &out[len(out)-1], false
		case cur == nil:
		case strings.HasPrefix(line, "origin: "):
			cur.origin = strings.TrimPrefix(line, "origin: ")
		case strings.HasPrefix(line, "decoded: "):
			cur.decoded = append(cur.decoded, strings.TrimPrefix(line, "decoded: "))
			inBlock = true
		case strings.HasPrefix(line, "hexstream: "):
			if cur.wire, err = hex.DecodeString(strings.TrimPrefix(line, "hexstream: ")); err != nil {
				t.Fatalf("%s: vector %d: %v", path, cur.num, err)
			}
		case strings.HasPrefix(line, "hex:"):
			inBlock = false
		case inBlock && strings.HasPrefix(line, " "):
			cur.decoded = append(cur.decoded, strings.TrimSpace(line))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 25 {
		t.Fatalf("%s: found %d vectors, want 25", path, len(out))
	}
	for _, v := range out {
		if v.wire == nil || len(v.decoded) == 0 {
			t.Fatalf("%s: vector %d has no hexstream or decoded block", path, v.num)
		}
	}
	return out
}

// describe prints m in the format of the vectors' "decoded:" blocks (written by the
// lab's nbns_probe.py), one line per entry.
func describe(m *Message) []string {
	h := m.Header
	kind := "REQ"
	if h.Response {
		kind = "RESP"
	}
	first := fmt.Sprintf("%s %s trn=0x%04x rcode=%s", kind, h.Opcode, h.ID, h.RCode)
	for _, f := range []struct {
		f    Flags
		name string
	}{{FlagAA, "AA"}, {FlagRD, "RD"}, {FlagRA, "RA"}, {FlagB, "B"}} {
		if h.Flags&f.f != 0 {
			first += " " + f.name
		}
	}
	out := []string{first}
	for _, q := range m.Questions {
		out = append(out, fmt.Sprintf("Q  %s<%02x> type=0x%04x", q.Name.Label, q.Name.Suffix, uint16(q.Type)))
	}
	for _, sec := range []struct {
		tag string
		rrs []Resource
	}{{"AN", m.Answers}, {"NS", m.Authorities}, {"AR", m.Additionals}} {
		for _, r := range sec.rrs {
			s := fmt.Sprintf("%s %s<%02x> type=0x%04x ttl=%d", sec.tag, r.Name.Label, r.Name.Suffix, uint16(r.Type), r.TTL)
			switch {
			case r.NB != nil:
				for _, e := range r.NB {
					s += " " + e.String()
				}
			case len(r.Data) > 0:
				s += " rdata=" + hex.EncodeToString(r.Data)
			}
			out = append(out, s)
			if r.Status != nil {
				for _, n := range r.Status.Names {
					out = append(out, fmt.Sprintf("%-15s <%02x> flags=0x%04x", n.Label, n.Suffix, uint16(n.Flags)))
				}
				u := r.Status.Statistics.UnitID
				out = append(out, fmt.Sprintf("unit_id(MAC)=%02x:%02x:%02x:%02x:%02x:%02x stats_len=%d", u[0], u[1], u[2], u[3], u[4], u[5], statisticsLen))
			}
		}
	}
	return out
}

func fields(lines []string) string {
	var out []string
	for _, l := range lines {
		out = append(out, strings.Join(strings.Fields(l), " "))
	}
	return strings.Join(out, "\n")
}

// TestVectorsDecode checks that every captured packet decodes to the fields its
// "decoded:" comment lists, and that encoding the decoded message gives the same
// bytes back.
func TestVectorsDecode(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(fmt.Sprintf("%02d", v.num), func(t *testing.T) {
			var m Message
			if err := m.Unpack(v.wire); err != nil {
				t.Fatalf("vector %d (%s): Unpack: %v", v.num, v.title, err)
			}
			if got, want := fields(describe(&m)), fields(v.decoded); got != want {
				t.Errorf("vector %d (%s) decoded to\n%s\nwant\n%s", v.num, v.title, got, want)
			}
			b, err := m.AppendPack(nil)
			if err != nil {
				t.Fatalf("vector %d: AppendPack: %v", v.num, err)
			}
			if got, want := hex.EncodeToString(b), hex.EncodeToString(v.wire); got != want {
				t.Errorf("vector %d (%s) re-encoded to\n%s\nwant\n%s", v.num, v.title, got, want)
			}
		})
	}
}
