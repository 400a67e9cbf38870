package nbns

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// NodeType is the owner node type (ONT) of a name: how the node resolves names.
type NodeType uint8

// Node types (RFC 1001 10; M and H as Windows and Samba use them).
const (
	BNode NodeType = 0 // broadcast
	PNode NodeType = 1 // point-to-point (WINS only)
	MNode NodeType = 2 // mixed: broadcast first, then WINS
	HNode NodeType = 3 // hybrid: WINS first, then broadcast
)

func (t NodeType) String() string {
	if t <= HNode {
		return string("BPMH"[t])
	}
	return fmt.Sprintf("NODETYPE(%d)", uint8(t))
}

// NBFlags is the NB_FLAGS field of an NB record entry: the group bit and the owner
// node type.
type NBFlags uint16

const (
	nbGroup   = 0x8000
	nbONT     = 0x6000
	nbONTShft = 13
)

// MakeNBFlags returns the NB_FLAGS for a name of node type t, group or unique.
func MakeNBFlags(t NodeType, group bool) NBFlags {
	f := NBFlags(t&3) << nbONTShft
	if group {
		f |= nbGroup
	}
	return f
}

// Group reports whether the entry is for a group name.
func (f NBFlags) Group() bool { return f&nbGroup != 0 }

// NodeType is the owner's node type.
func (f NBFlags) NodeType() NodeType { return NodeType(f & nbONT >> nbONTShft) }

func (f NBFlags) String() string {
	s := f.NodeType().String() + "-node"
	if f.Group() {
		s = "GROUP " + s
	}
	if rest := f &^ (nbGroup | nbONT); rest != 0 {
		s += fmt.Sprintf(" %#04x", uint16(rest))
	}
	return s
}

// NBEntry is one NB_FLAGS/NB_ADDRESS pair of an NB record.
type NBEntry struct {
	Flags NBFlags
	Addr  netip.Addr // IPv4
}

func (e NBEntry) String() string { return "[" + e.Flags.String() + " " + e.Addr.String() + "]" }

const nbEntryLen = 6

func appendNB(b []byte, entries []NBEntry) ([]byte, error) {
	for i, e := range entries {
		if !e.Addr.Is4() {
			return b, fmt.Errorf("NB entry %d: address %v is not IPv4 (NetBIOS over TCP/IP carries IPv4 only): %w", i, e.Addr, ErrRData)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(e.Flags))
		a := e.Addr.As4()
		b = append(b, a[:]...)
	}
	return b, nil
}

func unpackNB(rd []byte) []NBEntry {
	out := make([]NBEntry, 0, len(rd)/nbEntryLen)
	for i := 0; i+nbEntryLen <= len(rd); i += nbEntryLen {
		out = append(out, NBEntry{
			Flags: NBFlags(binary.BigEndian.Uint16(rd[i:])),
			Addr:  netip.AddrFrom4([4]byte(rd[i+2 : i+6])),
		})
	}
	return out
}

// NameFlags is the NAME_FLAGS field of a node status name table entry.
type NameFlags uint16

// Name table flag bits (RFC 1002 4.2.18). The owner node type sits in the same bits
// as in NBFlags.
const (
	NameGroup      NameFlags = 0x8000
	NameDeregister NameFlags = 0x1000 // DRG: being released
	NameConflict   NameFlags = 0x0800 // CNF: in conflict
	NameActive     NameFlags = 0x0400 // ACT: active (always set in answers)
	NamePermanent  NameFlags = 0x0200 // PRM: the node's permanent name
	nameFlagsKnown           = 0x8000 | nbONT | 0x1000 | 0x0800 | 0x0400 | 0x0200
)

// MakeNameFlags returns the flags for a name table entry of node type t.
func MakeNameFlags(t NodeType, f NameFlags) NameFlags {
	return f&^nbONT | NameFlags(t&3)<<nbONTShft
}

// NodeType is the owner's node type.
func (f NameFlags) NodeType() NodeType { return NodeType(f & nbONT >> nbONTShft) }

func (f NameFlags) String() string {
	parts := []string{f.NodeType().String() + "-node"}
	for _, b := range []struct {
		f    NameFlags
		name string
	}{{NameGroup, "GROUP"}, {NameDeregister, "DRG"}, {NameConflict, "CNF"}, {NameActive, "ACT"}, {NamePermanent, "PRM"}} {
		if f&b.f != 0 {
			parts = append(parts, b.name)
		}
	}
	if rest := f &^ nameFlagsKnown; rest != 0 {
		parts = append(parts, fmt.Sprintf("%#04x", uint16(rest)))
	}
	return strings.Join(parts, " ")
}

// StatusName is one entry of a node status name table: a 15-character name, its
// suffix and flags (no scope).
type StatusName struct {
	Label  string // without the space padding
	Suffix byte
	Flags  NameFlags
}

// Statistics is the fixed 46-byte tail of a node status response (RFC 1002 4.2.18).
// Samba sends zeros except for the unit id it leaves zero too; Windows fills in the
// MAC address of the adapter.
type Statistics struct {
	UnitID         [6]byte // MAC address of the interface
	Jumpers        uint8
	TestResult     uint8
	Version        uint16
	Period         uint16
	CRCs           uint16
	AlignErrors    uint16
	Collisions     uint16
	SendAborts     uint16
	GoodSends      uint32
	GoodReceives   uint32
	Retransmits    uint16
	NoResources    uint16
	FreeCommands   uint16
	TotalCommands  uint16
	MaxCommands    uint16
	PendingSession uint16
	MaxPending     uint16
	MaxSessions    uint16
	SessionSize    uint16
}

const (
	statisticsLen = 46
	statusNameLen = 18
	maxStatusName = 255 // NUM_NAMES is one byte
)

// NodeStatus is the RDATA of an NBSTAT record: the node's name table and statistics.
type NodeStatus struct {
	Names      []StatusName
	Statistics Statistics
}

func appendNodeStatus(b []byte, s *NodeStatus) ([]byte, error) {
	if len(s.Names) > maxStatusName {
		return b, fmt.Errorf("node status lists %d names, limit %d (NUM_NAMES is one byte): %w", len(s.Names), maxStatusName, ErrRData)
	}
	b = append(b, byte(len(s.Names)))
	for i, n := range s.Names {
		if len(n.Label) > MaxLabel {
			return b, fmt.Errorf("node status name %d %q is %d bytes, limit %d: %w", i, n.Label, len(n.Label), MaxLabel, ErrNameLength)
		}
		b = append(b, n.Label...)
		for j := len(n.Label); j < MaxLabel; j++ {
			b = append(b, ' ')
		}
		b = append(b, n.Suffix)
		b = binary.BigEndian.AppendUint16(b, uint16(n.Flags))
	}
	st := &s.Statistics
	b = append(b, st.UnitID[:]...)
	b = append(b, st.Jumpers, st.TestResult)
	for _, v := range []uint16{st.Version, st.Period, st.CRCs, st.AlignErrors, st.Collisions, st.SendAborts} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	b = binary.BigEndian.AppendUint32(b, st.GoodSends)
	b = binary.BigEndian.AppendUint32(b, st.GoodReceives)
	for _, v := range []uint16{st.Retransmits, st.NoResources, st.FreeCommands, st.TotalCommands,
		st.MaxCommands, st.PendingSession, st.MaxPending, st.MaxSessions, st.SessionSize} {
		b = binary.BigEndian.AppendUint16(b, v)
	}
	return b, nil
}

// unpackNodeStatus decodes NBSTAT RDATA that starts at off in the message. Bytes after
// the 46-byte statistics are ignored.
func unpackNodeStatus(rd []byte, off int) (*NodeStatus, error) {
	if len(rd) < 1 {
		return nil, parseErr("node status name count", off, ErrTruncated)
	}
	count := int(rd[0])
	need := 1 + count*statusNameLen + statisticsLen
	if len(rd) < need {
		return nil, parseErr("node status", off, fmt.Errorf("%w: %d names and statistics need %d bytes, have %d", ErrTruncated, count, need, len(rd)))
	}
	s := &NodeStatus{Names: make([]StatusName, count)}
	p := 1
	for i := range s.Names {
		e := rd[p : p+statusNameLen]
		s.Names[i] = StatusName{
			Label:  strings.TrimRight(string(e[:MaxLabel]), " "),
			Suffix: e[15],
			Flags:  NameFlags(binary.BigEndian.Uint16(e[16:])),
		}
		p += statusNameLen
	}
	st := &s.Statistics
	r := rd[p:]
	copy(st.UnitID[:], r)
	st.Jumpers, st.TestResult = r[6], r[7]
	u16 := func(at int) uint16 { return binary.BigEndian.Uint16(r[at:]) }
	st.Version, st.Period, st.CRCs, st.AlignErrors, st.Collisions, st.SendAborts = u16(8), u16(10), u16(12), u16(14), u16(16), u16(18)
	st.GoodSends, st.GoodReceives = binary.BigEndian.Uint32(r[20:]), binary.BigEndian.Uint32(r[24:])
	st.Retransmits, st.NoResources, st.FreeCommands, st.TotalCommands = u16(28), u16(30), u16(32), u16(34)
	st.MaxCommands, st.PendingSession, st.MaxPending, st.MaxSessions, st.SessionSize = u16(36), u16(38), u16(40), u16(42), u16(44)
	return s, nil
}
