package nbns

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// query is vector 13 (a name query for FILESRV<20> with RD).
const query = "250101000001000000000000204547454a454d45464644464346474341434143414341434143414341434143410000200001"

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUnpackErrors(t *testing.T) {
	q := mustHex(t, query)
	name := q[12:46] // the encoded FILESRV<20>
	hdr := func(qd, an byte) []byte { return []byte{0, 1, 0x85, 0x80, 0, qd, 0, an, 0, 0, 0, 0} }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	rr := func(typ byte, rdlen byte, rd ...byte) []byte {
		return cat(name, []byte{0, typ, 0, 1, 0, 0, 0, 60, 0, rdlen}, rd)
	}
	badHalf := cat(q[:12], []byte{32, 'Z'}, q[14:])
	tests := []struct {
		name   string
		msg    []byte
		err    error
		field  string
		offset int
	}{
		{"short header", q[:11], ErrTruncated, "header", 0},
		{"count beyond message", cat(hdr(0, 200), rr(0x20, 0)), ErrCount, "header counts", 4},
		{"question name cut", q[:30], ErrTruncated, "question 1 name label", 12},
		{"question type cut", q[:47], ErrTruncated, "question 1 type and class", 46},
		{"half-ASCII out of range", badHalf, ErrLabel, "question 1 name label", 13},
		{"first label 31 bytes", cat(hdr(1, 0), []byte{31}, name[1:32], []byte{0, 0, 0x20, 0, 1}), ErrLabel, "question 1 name label", 12},
		{"label length 0x80", cat(hdr(1, 0), []byte{0x80, 0, 0, 0, 0, 0, 0}), ErrLabel, "question 1 name label length", 12},
		{"pointer to itself", cat(hdr(1, 0), []byte{0xc0, 12, 0, 0x20, 0, 1}), ErrPointer, "question 1 name pointer", 12},
		{"pointer forward", cat(hdr(1, 0), []byte{0xc0, 20, 0, 0x20, 0, 1, 0, 0}), ErrPointer, "question 1 name pointer", 12},
		{"pointer cut", cat(hdr(2, 0), name, []byte{0, 0x20, 0, 1, 0xc0}), ErrTruncated, "question 2 name pointer", 50},
		{"empty name", cat(hdr(1, 0), []byte{0, 0, 0x20, 0, 1, 0}), ErrLabel, "question 1 name", 12},
		{"rdata beyond message", cat(hdr(0, 1), rr(0x20, 12, 0x60, 0, 198, 18, 0, 10)), ErrTruncated, "answer 1 rdata", 56},
		{"node status count beyond rdata", cat(hdr(0, 1), rr(0x21, 3, 5, 0, 0)), ErrTruncated, "answer 1 node status", 56},
		{"node status without statistics", cat(hdr(0, 1), rr(0x21, 1, 0)), ErrTruncated, "answer 1 node status", 56},
		{"record header cut", cat(hdr(0, 1), name, []byte{0, 0x20, 0, 1}), ErrTruncated, "answer 1 type, class, ttl and rdlength", 46},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m Message
			err := m.Unpack(tt.msg)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Unpack(%x) = %v, want a *ParseError", tt.msg, err)
			}
			if !errors.Is(err, tt.err) || pe.Field != tt.field || pe.Offset != tt.offset {
				t.Errorf("Unpack(%x) = %q (field %q, offset %d), want %v in field %q at offset %d",
					tt.msg, err, pe.Field, pe.Offset, tt.err, tt.field, tt.offset)
			}
		})
	}
}

func TestPointerChainBounded(t *testing.T) {
	// A name, then 20 pointers each to the previous one: decoding the last needs 20
	// hops, more than the limit.
	msg := append([]byte{0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}, mustHex(t, query)[12:46]...)
	prev := 12
	for i := 0; i < 20; i++ {
		at := len(msg)
		msg = append(msg, 0xc0|byte(prev>>8), byte(prev))
		prev = at
	}
	var m Message
	if err := m.Unpack(msg); err != nil {
		t.Fatalf("first name: %v", err)
	}
	if _, _, err := unpackName(msg, prev); !errors.Is(err, ErrPointer) {
		t.Errorf("20-pointer chain: got %v, want %v", err, ErrPointer)
	}
	if _, _, err := unpackName(msg, 12+34+2*10); err != nil {
		t.Errorf("10-pointer chain: %v", err)
	}
}

func TestNameRoundTrip(t *testing.T) {
	tests := []struct {
		name Name
		wire string // hex of the encoded name, or "" when encoding must fail
	}{
		{Name{Label: "FILESRV", Suffix: 0x20}, "204547454a454d45464644464346474341434143414341434143414341434143410000"[:68]},
		{Wildcard, "20434b414141414141414141414141414141414141414141414141414141414141" + "00"},
		{Name{Label: "A", Suffix: 0x1b, Scope: "corp.example"}, "20454243414341434143414341434143414341434143414341434143414341424c04636f7270076578616d706c6500"},
		{Name{Label: "SIXTEEN-CHARS-XX"}, ""},
		{Name{Label: "A", Scope: "a..b"}, ""},
		{Name{Label: "A", Scope: strings.Repeat("x", 64)}, ""},
		{Name{Label: "A", Scope: strings.Repeat("abcdefg.", 28) + "x"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name.String(), func(t *testing.T) {
			b, err := tt.name.appendWire(nil)
			if tt.wire == "" {
				if err == nil {
					t.Fatalf("encoding %v succeeded (%x), want an error", tt.name, b)
				}
				return
			}
			if err != nil {
				t.Fatalf("encoding %v: %v", tt.name, err)
			}
			if got := hex.EncodeToString(b); got != tt.wire {
				t.Errorf("encoding %v = %s, want %s", tt.name, got, tt.wire)
			}
			got, end, err := unpackName(b, 0)
			if err != nil || end != len(b) || got != tt.name {
				t.Errorf("decoding %x = %v, %d, %v; want %v, %d, nil", b, got, end, err, tt.name, len(b))
			}
		})
	}
}

func TestPackErrors(t *testing.T) {
	long := Name{Label: "WAY-TOO-LONG-NAME"}
	v6 := NBEntry{Addr: mustAddr("2001:2::1")}
	tests := []struct {
		name string
		m    *Message
		err  error
	}{
		{"long question name", NewNameQuery(1, long, 0), ErrNameLength},
		{"IPv6 NB entry", NewRegistration(1, Name{Label: "A"}, 1, v6, false), ErrRData},
		{"256 node status names", NewNodeStatusResponse(NewNodeStatusRequest(1), &NodeStatus{Names: make([]StatusName, 256)}), ErrRData},
		{"long node status name", NewNodeStatusResponse(NewNodeStatusRequest(1), &NodeStatus{Names: []StatusName{{Label: long.Label}}}), ErrNameLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.m.AppendPack([]byte{0xaa})
			if !errors.Is(err, tt.err) {
				t.Errorf("AppendPack(%v) = %v, want %v", tt.m, err, tt.err)
			}
			if !bytes.Equal(b, []byte{0xaa}) {
				t.Errorf("AppendPack changed the buffer on error: %x", b)
			}
		})
	}
}

func TestAppendPackKeepsPrefix(t *testing.T) {
	// Compression pointers are relative to the message start, not the buffer start.
	m := NewMultiHomedRegistration(7, Name{Label: "FILESRV", Suffix: 0x20}, 60, NBEntry{Addr: mustAddr("192.0.2.1")})
	b, err := m.AppendPack([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	var got Message
	if err := got.Unpack(b[len("prefix"):]); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, m) {
		t.Errorf("round trip through a prefixed buffer:\n got %v\nwant %v", &got, m)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct{ got, want string }{
		{OpMultiHomedRegister.String(), "MULTIHOMED-REGISTRATION"},
		{Opcode(3).String(), "OPCODE(3)"},
		{RCodeActive.String(), "ACT_ERR"},
		{RCode(9).String(), "RCODE(9)"},
		{(FlagAA | FlagB | 0x0020).String(), "AA|B|0x0020"},
		{TypeNBSTAT.String(), "NBSTAT"},
		{Class(3).String(), "CLASS(3)"},
		{MakeNBFlags(MNode, true).String(), "GROUP M-node"},
		{MakeNameFlags(PNode, NameActive|NameConflict).String(), "P-node CNF ACT"},
		{NodeType(7).String(), "NODETYPE(7)"},
		{Name{Label: "A", Suffix: 0x1b, Scope: "x.y"}.String(), "A<1b>.x.y"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("String() = %q, want %q", tt.got, tt.want)
		}
	}
}
