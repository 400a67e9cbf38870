package nbns

import (
	"encoding/binary"
	"fmt"
	"strings"
)

const (
	headerLen     = 12
	minQuestion   = 2 + 4      // a compressed name and QTYPE/QCLASS
	minResource   = 2 + 10     // a compressed name, TYPE, CLASS, TTL, RDLENGTH
	maxPointerOff = 0x3fff     // highest offset a compression pointer can reach
	maxRData      = 0xffff     // RDLENGTH is 16 bits
	maxMessage    = 0xffff - 8 // a UDP payload
)

// Question is an entry of the question section.
type Question struct {
	Name  Name
	Type  Type // TypeNB for name queries and registrations, TypeNBSTAT for node status
	Class Class
}

func (q Question) String() string { return fmt.Sprintf("%v %v %v", q.Name, q.Class, q.Type) }

// Resource is a resource record. Its RDATA is held in exactly one of NB, Status and
// Data: records of TypeNB whose length is a multiple of 6 decode into NB, records of
// TypeNBSTAT into Status, everything else (NULL records, the WACK's copy of the
// request flags, RFC-style WACKs typed NB) into Data. On encode the first non-nil of
// Status, NB, Data is written.
type Resource struct {
	Name   Name
	Type   Type
	Class  Class
	TTL    uint32 // seconds
	NB     []NBEntry
	Status *NodeStatus
	Data   []byte
}

func (r Resource) String() string {
	s := fmt.Sprintf("%v %v %v ttl=%d", r.Name, r.Class, r.Type, r.TTL)
	switch {
	case r.Status != nil:
		s += fmt.Sprintf(" names=%d unit=%x", len(r.Status.Names), r.Status.Statistics.UnitID)
	case r.NB != nil:
		for _, e := range r.NB {
			s += " " + e.String()
		}
	case len(r.Data) > 0:
		s += fmt.Sprintf(" rdata=%x", r.Data)
	}
	return s
}

// Message is a complete name service packet.
type Message struct {
	Header
	Questions   []Question
	Answers     []Resource
	Authorities []Resource
	Additionals []Resource
}

func (m *Message) String() string {
	var b strings.Builder
	b.WriteString(m.Header.String())
	for _, q := range m.Questions {
		b.WriteString("; Q " + q.String())
	}
	for _, sec := range []struct {
		tag string
		rrs []Resource
	}{{"AN", m.Answers}, {"NS", m.Authorities}, {"AR", m.Additionals}} {
		for _, r := range sec.rrs {
			b.WriteString("; " + sec.tag + " " + r.String())
		}
	}
	return b.String()
}

// packer appends a message and remembers where whole names were written, so a name
// repeated later (the registration's additional record repeating the question) is
// written as a pointer, as Samba and Windows do.
type packer struct {
	b     []byte
	start int
	names map[string]int
}

func (p *packer) name(n Name) error {
	wire, err := n.appendWire(nil)
	if err != nil {
		return err
	}
	if off, ok := p.names[string(wire)]; ok {
		p.b = append(p.b, 0xc0|byte(off>>8), byte(off))
		return nil
	}
	if off := len(p.b) - p.start; off <= maxPointerOff {
		p.names[string(wire)] = off
	}
	p.b = append(p.b, wire...)
	return nil
}

// AppendPack appends the wire form of m to b.
func (m *Message) AppendPack(b []byte) ([]byte, error) {
	for _, c := range []struct {
		what string
		n    int
	}{{"questions", len(m.Questions)}, {"answers", len(m.Answers)}, {"authorities", len(m.Authorities)}, {"additionals", len(m.Additionals)}} {
		if c.n > 0xffff {
			return b, fmt.Errorf("nbns: pack: %d %s, limit 65535: %w", c.n, c.what, ErrCount)
		}
	}
	p := packer{b: b, start: len(b), names: make(map[string]int, 2)}
	p.b = binary.BigEndian.AppendUint16(p.b, m.ID)
	p.b = binary.BigEndian.AppendUint16(p.b, m.Header.word())
	for _, n := range []int{len(m.Questions), len(m.Answers), len(m.Authorities), len(m.Additionals)} {
		p.b = binary.BigEndian.AppendUint16(p.b, uint16(n))
	}
	for i, q := range m.Questions {
		if err := p.name(q.Name); err != nil {
			return b, fmt.Errorf("nbns: pack question %d name: %w", i+1, err)
		}
		p.b = binary.BigEndian.AppendUint16(p.b, uint16(q.Type))
		p.b = binary.BigEndian.AppendUint16(p.b, uint16(q.Class))
	}
	for _, sec := range []struct {
		what string
		rrs  []Resource
	}{{"answer", m.Answers}, {"authority", m.Authorities}, {"additional", m.Additionals}} {
		for i := range sec.rrs {
			if err := p.resource(&sec.rrs[i]); err != nil {
				return b, fmt.Errorf("nbns: pack %s %d: %w", sec.what, i+1, err)
			}
		}
	}
	if len(p.b)-p.start > maxMessage {
		return b, fmt.Errorf("nbns: pack: message is %d bytes, limit %d: %w", len(p.b)-p.start, maxMessage, ErrCount)
	}
	return p.b, nil
}

func (p *packer) resource(r *Resource) error {
	if err := p.name(r.Name); err != nil {
		return fmt.Errorf("name: %w", err)
	}
	p.b = binary.BigEndian.AppendUint16(p.b, uint16(r.Type))
	p.b = binary.BigEndian.AppendUint16(p.b, uint16(r.Class))
	p.b = binary.BigEndian.AppendUint32(p.b, r.TTL)
	lenAt := len(p.b)
	p.b = append(p.b, 0, 0)
	var err error
	switch {
	case r.Status != nil:
		p.b, err = appendNodeStatus(p.b, r.Status)
	case r.NB != nil:
		p.b, err = appendNB(p.b, r.NB)
	default:
		p.b = append(p.b, r.Data...)
	}
	if err != nil {
		return err
	}
	n := len(p.b) - lenAt - 2
	if n > maxRData {
		return fmt.Errorf("rdata is %d bytes, limit %d: %w", n, maxRData, ErrRData)
	}
	binary.BigEndian.PutUint16(p.b[lenAt:], uint16(n))
	return nil
}

// Unpack decodes msg into m, replacing its contents. Errors are *ParseError values.
func (m *Message) Unpack(msg []byte) error {
	*m = Message{}
	if len(msg) < headerLen {
		return parseErr("header", 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrTruncated, len(msg), headerLen))
	}
	be := binary.BigEndian
	m.Header = headerFromWord(be.Uint16(msg), be.Uint16(msg[2:]))
	counts := [4]int{int(be.Uint16(msg[4:])), int(be.Uint16(msg[6:])), int(be.Uint16(msg[8:])), int(be.Uint16(msg[10:]))}
	need := counts[0]*minQuestion + (counts[1]+counts[2]+counts[3])*minResource
	if need > len(msg)-headerLen {
		return parseErr("header counts", 4, fmt.Errorf("%w: %d questions and %d records need at least %d bytes, have %d",
			ErrCount, counts[0], counts[1]+counts[2]+counts[3], need, len(msg)-headerLen))
	}
	off := headerLen
	if counts[0] > 0 {
		m.Questions = make([]Question, 0, counts[0])
	}
	for i := 0; i < counts[0]; i++ {
		q, next, err := unpackQuestion(msg, off)
		if err != nil {
			return within(fmt.Sprintf("question %d", i+1), err)
		}
		m.Questions = append(m.Questions, q)
		off = next
	}
	for s, sec := range []struct {
		what string
		dst  *[]Resource
	}{{"answer", &m.Answers}, {"authority", &m.Authorities}, {"additional", &m.Additionals}} {
		n := counts[s+1]
		if n > 0 {
			*sec.dst = make([]Resource, 0, n)
		}
		for i := 0; i < n; i++ {
			r, next, err := unpackResource(msg, off)
			if err != nil {
				return within(fmt.Sprintf("%s %d", sec.what, i+1), err)
			}
			*sec.dst = append(*sec.dst, r)
			off = next
		}
	}
	return nil
}

func unpackQuestion(msg []byte, off int) (Question, int, error) {
	n, off, err := unpackName(msg, off)
	if err != nil {
		return Question{}, 0, err
	}
	if off+4 > len(msg) {
		return Question{}, 0, parseErr("type and class", off, ErrTruncated)
	}
	q := Question{
		Name:  n,
		Type:  Type(binary.BigEndian.Uint16(msg[off:])),
		Class: Class(binary.BigEndian.Uint16(msg[off+2:])),
	}
	return q, off + 4, nil
}

func unpackResource(msg []byte, off int) (Resource, int, error) {
	n, off, err := unpackName(msg, off)
	if err != nil {
		return Resource{}, 0, err
	}
	if off+10 > len(msg) {
		return Resource{}, 0, parseErr("type, class, ttl and rdlength", off, ErrTruncated)
	}
	be := binary.BigEndian
	r := Resource{
		Name:  n,
		Type:  Type(be.Uint16(msg[off:])),
		Class: Class(be.Uint16(msg[off+2:])),
		TTL:   be.Uint32(msg[off+4:]),
	}
	rdlen := int(be.Uint16(msg[off+8:]))
	off += 10
	if off+rdlen > len(msg) {
		return Resource{}, 0, parseErr("rdata", off, fmt.Errorf("%w: rdlength %d, %d bytes left", ErrTruncated, rdlen, len(msg)-off))
	}
	rd := msg[off : off+rdlen]
	switch {
	case r.Type == TypeNBSTAT:
		if r.Status, err = unpackNodeStatus(rd, off); err != nil {
			return Resource{}, 0, err
		}
	case r.Type == TypeNB && rdlen > 0 && rdlen%nbEntryLen == 0:
		r.NB = unpackNB(rd)
	case rdlen > 0:
		r.Data = append([]byte(nil), rd...)
	}
	return r, off + rdlen, nil
}
