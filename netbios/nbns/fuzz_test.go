package nbns

import (
	"net/netip"
	"reflect"
	"testing"
)

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

// FuzzUnpack checks decode → encode → decode: whatever decodes must encode, and the
// encoding must decode to the same message. The seed corpus is in testdata/fuzz.
func FuzzUnpack(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.wire)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m1 Message
		if err := m1.Unpack(b); err != nil {
			return
		}
		w, err := m1.AppendPack(nil)
		if err != nil {
			t.Fatalf("decoded %x to %v but cannot encode it: %v", b, &m1, err)
		}
		var m2 Message
		if err := m2.Unpack(w); err != nil {
			t.Fatalf("re-encoded %v as %x, which does not decode: %v", &m1, w, err)
		}
		if !reflect.DeepEqual(&m1, &m2) {
			t.Fatalf("round trip changed the message:\n first %v\nsecond %v", &m1, &m2)
		}
	})
}
