// Package nbns encodes and decodes NetBIOS name service messages (RFC 1001/1002,
// UDP port 137): the DNS-shaped header, first-level encoded names with optional
// scope, questions, and NB, NBSTAT and NULL resource records.
//
// Marshalling is append-style (Message.AppendPack); unmarshalling is offset-based
// (Message.Unpack) and every error is a *ParseError naming the field and offset.
// Counts and compression pointers are bounded; decoding never panics.
package nbns

import (
	"fmt"
	"strings"
)

// Opcode is the 4-bit OPCODE of the header (RFC 1002 4.2.1.1).
type Opcode uint8

// Opcodes. Samba (and Windows) answer refresh and multi-homed registration requests
// with OpRegister responses.
const (
	OpQuery              Opcode = 0x0
	OpRegister           Opcode = 0x5
	OpRelease            Opcode = 0x6
	OpWACK               Opcode = 0x7
	OpRefresh            Opcode = 0x8
	OpRefreshAlt         Opcode = 0x9 // RFC 1002 errata: some stacks send refresh as 9
	OpMultiHomedRegister Opcode = 0xF // Microsoft extension, used by Samba and Windows
)

func (o Opcode) String() string {
	switch o {
	case OpQuery:
		return "QUERY"
	case OpRegister:
		return "REGISTRATION"
	case OpRelease:
		return "RELEASE"
	case OpWACK:
		return "WACK"
	case OpRefresh, OpRefreshAlt:
		return "REFRESH"
	case OpMultiHomedRegister:
		return "MULTIHOMED-REGISTRATION"
	}
	return fmt.Sprintf("OPCODE(%d)", uint8(o))
}

// RCode is the 4-bit RCODE of the header (RFC 1002 4.2.6 and following).
type RCode uint8

// Response codes.
const (
	RCodeOK             RCode = 0
	RCodeFormat         RCode = 1 // FMT_ERR: request was invalidly formatted
	RCodeServer         RCode = 2 // SRV_ERR: server failure
	RCodeName           RCode = 3 // NAM_ERR: name does not exist (for a release: already gone)
	RCodeNotImplemented RCode = 4 // IMP_ERR: unsupported request
	RCodeRefused        RCode = 5 // RFS_ERR: policy refusal
	RCodeActive         RCode = 6 // ACT_ERR: name is owned by another node
	RCodeConflict       RCode = 7 // CFT_ERR: name in conflict (also the NAME CONFLICT DEMAND)
)

var rcodeNames = [...]string{"OK", "FMT_ERR", "SRV_ERR", "NAM_ERR", "IMP_ERR", "RFS_ERR", "ACT_ERR", "CFT_ERR"}

func (r RCode) String() string {
	if int(r) < len(rcodeNames) {
		return rcodeNames[r]
	}
	return fmt.Sprintf("RCODE(%d)", uint8(r))
}

// Flags are the NM_FLAGS bits of the header, as masks on the 16-bit flags word.
type Flags uint16

// Header flag bits (RFC 1002 4.2.1.1).
const (
	FlagAA Flags = 0x0400 // authoritative answer
	FlagTC Flags = 0x0200 // truncation
	FlagRD Flags = 0x0100 // recursion desired
	FlagRA Flags = 0x0080 // recursion available
	FlagB  Flags = 0x0010 // broadcast

	flagsMask Flags = 0x07f0 // NM_FLAGS including the two reserved bits, kept as read
)

func (f Flags) String() string {
	var parts []string
	for _, b := range []struct {
		f    Flags
		name string
	}{{FlagAA, "AA"}, {FlagTC, "TC"}, {FlagRD, "RD"}, {FlagRA, "RA"}, {FlagB, "B"}} {
		if f&b.f != 0 {
			parts = append(parts, b.name)
		}
	}
	if rest := f &^ (FlagAA | FlagTC | FlagRD | FlagRA | FlagB); rest != 0 {
		parts = append(parts, fmt.Sprintf("%#04x", uint16(rest)))
	}
	return strings.Join(parts, "|")
}

// Header is the fixed part of a message without the section counts, which are
// derived from the sections.
type Header struct {
	ID       uint16 // NAME_TRN_ID
	Response bool   // R bit
	Opcode   Opcode
	Flags    Flags
	RCode    RCode
}

func (h Header) word() uint16 {
	w := uint16(h.Opcode&0xf)<<11 | uint16(h.Flags&flagsMask) | uint16(h.RCode&0xf)
	if h.Response {
		w |= 0x8000
	}
	return w
}

func headerFromWord(id, w uint16) Header {
	return Header{
		ID:       id,
		Response: w&0x8000 != 0,
		Opcode:   Opcode(w >> 11 & 0xf),
		Flags:    Flags(w) & flagsMask,
		RCode:    RCode(w & 0xf),
	}
}

func (h Header) String() string {
	kind := "REQ"
	if h.Response {
		kind = "RESP"
	}
	s := fmt.Sprintf("%s %s id=%#04x rcode=%s", kind, h.Opcode, h.ID, h.RCode)
	if h.Flags != 0 {
		s += " " + h.Flags.String()
	}
	return s
}

// Type is a question or resource record type.
type Type uint16

// Record types used by the NetBIOS name service.
const (
	TypeA      Type = 0x0001 // IP address (redirect responses)
	TypeNS     Type = 0x0002 // name server (redirect responses)
	TypeNULL   Type = 0x000a // WACK and negative query responses
	TypeNB     Type = 0x0020 // general name service resource record
	TypeNBSTAT Type = 0x0021 // node status
)

func (t Type) String() string {
	switch t {
	case TypeA:
		return "A"
	case TypeNS:
		return "NS"
	case TypeNULL:
		return "NULL"
	case TypeNB:
		return "NB"
	case TypeNBSTAT:
		return "NBSTAT"
	}
	return fmt.Sprintf("TYPE(%#04x)", uint16(t))
}

// Class is a question or resource record class; NetBIOS uses only ClassIN.
type Class uint16

// ClassIN is the Internet class.
const ClassIN Class = 1

func (c Class) String() string {
	if c == ClassIN {
		return "IN"
	}
	return fmt.Sprintf("CLASS(%d)", uint16(c))
}
