package nbns

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
)

// TestBuildersMatchSamba builds, with this package's builders, the packet of every
// vector (all Samba-originated ones at least) and compares it byte for byte. The
// transaction id and TTL are taken from the capture; responses are built from the
// decoded request vector they answer.
func TestBuildersMatchSamba(t *testing.T) {
	vs := loadVectors(t)
	byNum := map[int]vector{}
	for _, v := range vs {
		byNum[v.num] = v
	}
	req := func(n int) *Message {
		var m Message
		if err := m.Unpack(byNum[n].wire); err != nil {
			t.Fatalf("vector %d: %v", n, err)
		}
		return &m
	}
	var (
		filesrv = Name{Label: "FILESRV", Suffix: 0x20}
		nblab   = Name{Label: "NBLAB", Suffix: 0x00}
		cluster = Name{Label: "NBLCLUSTER", Suffix: 0x20}
		h       = MakeNBFlags(HNode, false)
		at      = func(a string) NBEntry { return NBEntry{Flags: h, Addr: netip.MustParseAddr(a)} }
		ip10    = at("198.18.0.10")
		ip11    = at("198.18.0.11")
		uniqueH = MakeNameFlags(HNode, NameActive)
		groupH  = MakeNameFlags(HNode, NameActive|NameGroup)
	)
	release := func(id uint16, e NBEntry) *Message {
		m := NewRelease(id, filesrv, e, false)
		m.Additionals[0].TTL = 259200 // TTL aside: nmbd repeats its registration TTL, RFC 1002 says 0
		return m
	}
	build := map[int]func() *Message{
		1: func() *Message { return NewMultiHomedRegistration(0x04b5, filesrv, 259200, ip10) },
		2: func() *Message { return NewRegistrationResponse(req(1), RCodeOK, 60) },
		3: func() *Message { return NewMultiHomedRegistration(0x04be, filesrv, 259200, ip11) },
		4: func() *Message { return NewWACK(req(3), 60) },
		5: func() *Message { return NewNameQuery(0x0486, filesrv, 0) },
		6: func() *Message { return NewQueryResponse(req(5), 60, ip10, ip11) },
		7: func() *Message { return NewRegistrationResponse(req(3), RCodeOK, 60) },
		8: func() *Message {
			return NewRegistration(0x04b8, nblab, 259200, NBEntry{MakeNBFlags(HNode, true), ip10.Addr}, false)
		},
		9:  func() *Message { return NewRegistrationResponse(req(8), RCodeOK, 60) },
		10: func() *Message { return NewRegistration(0x04ab, filesrv, 0, ip11, true) },
		11: func() *Message { return NewRefresh(0x04c7, filesrv, 259200, ip10) },
		12: func() *Message { return NewRegistrationResponse(req(11), RCodeOK, 60) },
		13: func() *Message { return NewNameQuery(0x2501, filesrv, FlagRD) },
		14: func() *Message { return NewQueryResponse(req(13), 59, ip10, ip11) },
		15: func() *Message { return NewNodeStatusRequest(0x7be1) },
		16: func() *Message {
			return NewNodeStatusResponse(req(15), &NodeStatus{Names: []StatusName{
				{"FILESRV", 0x00, uniqueH}, {"FILESRV", 0x03, uniqueH}, {"FILESRV", 0x20, uniqueH},
				{"NBLAB", 0x00, groupH}, {"NBLAB", 0x1e, groupH},
			}})
		},
		17: func() *Message { return release(0x04d5, ip10) },
		18: func() *Message { return NewReleaseResponse(req(17), RCodeOK) },
		19: func() *Message { return release(0x04d6, ip11) },
		20: func() *Message { return NewReleaseResponse(req(19), RCodeName) },
		21: func() *Message { return NewNegativeQueryResponse(NewNameQuery(0x5a5d, filesrv, FlagRD), RCodeName) },
		22: func() *Message { return NewRegistration(0x8e48, cluster, 300, at("198.18.0.2"), false) },
		23: func() *Message { return NewWACK(req(22), 60) },
		24: func() *Message { return NewRegistrationResponse(req(22), RCodeActive, 0) },
		25: func() *Message {
			q := NewNodeStatusRequest(0x22a7)
			return NewNodeStatusResponse(q, &NodeStatus{
				Names:      []StatusName{{"NBLCLUSTER", 0x00, uniqueH}, {"NBLCLUSTER", 0x20, uniqueH}},
				Statistics: Statistics{UnitID: [6]byte{0x02, 0x00, 0x5e, 0x10, 0x00, 0x01}},
			})
		},
	}
	for _, v := range vs {
		t.Run(fmt.Sprintf("%02d", v.num), func(t *testing.T) {
			f, ok := build[v.num]
			if !ok {
				if v.samba() {
					t.Fatalf("vector %d (%s) comes from Samba but has no builder case", v.num, v.title)
				}
				return
			}
			b, err := f().AppendPack(nil)
			if err != nil {
				t.Fatalf("vector %d: AppendPack: %v", v.num, err)
			}
			if got, want := hex.EncodeToString(b), hex.EncodeToString(v.wire); got != want {
				t.Errorf("vector %d (%s): built\n%s\nwant\n%s", v.num, v.title, got, want)
			}
		})
	}
}

func TestConflictDemand(t *testing.T) {
	e := NBEntry{MakeNBFlags(HNode, false), netip.MustParseAddr("192.0.2.7")}
	b, err := NewConflictDemand(0x1234, Name{Label: "FILESRV", Suffix: 0x20}, e).AppendPack(nil)
	if err != nil {
		t.Fatal(err)
	}
	var m Message
	if err := m.Unpack(b); err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "RESP REGISTRATION id=0x1234 rcode=CFT_ERR AA|RD|RA; AN FILESRV<20> IN NB ttl=0 [H-node 192.0.2.7]"; got != want {
		t.Errorf("conflict demand decoded to\n%s\nwant\n%s", got, want)
	}
}
