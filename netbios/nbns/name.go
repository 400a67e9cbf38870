package nbns

import (
	"fmt"
	"strings"
)

// Limits of the name encoding (RFC 1001 14.1, RFC 1002 4.1).
const (
	MaxLabel      = 15  // NetBIOS name characters before the suffix byte
	maxWireName   = 255 // encoded name including length bytes and the terminator
	maxScopeLabel = 63  // one scope label, as in DNS
	maxPointers   = 16  // compression pointers followed for one name
	encodedLen    = 32  // first-level encoded NetBIOS name (16 bytes, half-ASCII)
)

// Name is a NetBIOS name: up to 15 characters, a suffix byte (the 16th byte, e.g.
// 0x20 for the file server service) and an optional scope (dot-separated labels).
//
// Label holds the characters without the padding: spaces are appended on encode and
// trailing spaces removed on decode. The node status wildcard is the label "*" with
// suffix 0x00, padded with NUL bytes instead. The codec does not change case; use
// upper case as every NetBIOS stack does.
type Name struct {
	Label  string
	Suffix byte
	Scope  string
}

// Wildcard is the name a node status request asks for ('*' padded with NULs).
var Wildcard = Name{Label: "*"}

// String writes the name as FILESRV<20> or FILESRV<20>.scope.example.
func (n Name) String() string {
	s := fmt.Sprintf("%s<%02x>", n.Label, n.Suffix)
	if n.Scope != "" {
		s += "." + n.Scope
	}
	return s
}

// raw returns the 16 bytes that are first-level encoded.
func (n Name) raw() ([16]byte, error) {
	var r [16]byte
	if len(n.Label) > MaxLabel {
		return r, fmt.Errorf("label %q is %d bytes, limit %d: %w", n.Label, len(n.Label), MaxLabel, ErrNameLength)
	}
	pad := byte(' ')
	if n.Label == "*" {
		pad = 0
	}
	copy(r[:], n.Label)
	for i := len(n.Label); i < MaxLabel; i++ {
		r[i] = pad
	}
	r[15] = n.Suffix
	return r, nil
}

// appendWire appends the uncompressed wire form: the 32-byte encoded label, the scope
// labels, and the terminating zero.
func (n Name) appendWire(b []byte) ([]byte, error) {
	r, err := n.raw()
	if err != nil {
		return b, err
	}
	start := len(b)
	b = append(b, encodedLen)
	for _, c := range r {
		b = append(b, 'A'+c>>4, 'A'+c&0x0f)
	}
	if n.Scope != "" {
		for _, l := range strings.Split(n.Scope, ".") {
			if len(l) == 0 || len(l) > maxScopeLabel {
				return b[:start], fmt.Errorf("scope %q has a label of %d bytes, want 1..%d: %w", n.Scope, len(l), maxScopeLabel, ErrLabel)
			}
			b = append(b, byte(len(l)))
			b = append(b, l...)
		}
	}
	b = append(b, 0)
	if len(b)-start > maxWireName {
		return b[:start], fmt.Errorf("scope %q makes the encoded name %d bytes, limit %d: %w", n.Scope, len(b)-start, maxWireName, ErrNameLength)
	}
	return b, nil
}

// unpackName decodes the name at off in msg, following compression pointers (each
// must point strictly backwards; at most maxPointers). It returns the offset just
// after the name as it appears at off.
func unpackName(msg []byte, off int) (Name, int, error) {
	var (
		n      Name
		labels []string
		end    = -1 // offset after the name in the original position
		hops   int
		total  int
		cur    = off
	)
	for {
		if cur >= len(msg) {
			return n, 0, parseErr("name", cur, ErrTruncated)
		}
		l := int(msg[cur])
		switch {
		case l&0xc0 == 0xc0:
			if cur+1 >= len(msg) {
				return n, 0, parseErr("name pointer", cur, ErrTruncated)
			}
			ptr := (l&0x3f)<<8 | int(msg[cur+1])
			if ptr >= cur {
				return n, 0, parseErr("name pointer", cur, fmt.Errorf("%w: target %d is not before the pointer", ErrPointer, ptr))
			}
			if hops++; hops > maxPointers {
				return n, 0, parseErr("name pointer", cur, fmt.Errorf("%w: more than %d pointers", ErrPointer, maxPointers))
			}
			if end < 0 {
				end = cur + 2
			}
			cur = ptr
			continue
		case l&0xc0 != 0:
			return n, 0, parseErr("name label length", cur, fmt.Errorf("%w: length byte %#02x", ErrLabel, l))
		case l == 0:
			if end < 0 {
				end = cur + 1
			}
			if len(labels) == 0 {
				return n, 0, parseErr("name", cur, fmt.Errorf("%w: empty name", ErrLabel))
			}
			n.Scope = strings.Join(labels[1:], ".")
			return n, end, nil
		}
		if total += l + 1; total+1 > maxWireName {
			return n, 0, parseErr("name", cur, fmt.Errorf("%w: over %d bytes", ErrNameLength, maxWireName))
		}
		if cur+1+l > len(msg) {
			return n, 0, parseErr("name label", cur, ErrTruncated)
		}
		label := msg[cur+1 : cur+1+l]
		if len(labels) == 0 {
			var err error
			if n.Label, n.Suffix, err = decodeFirst(label, cur); err != nil {
				return n, 0, err
			}
			labels = append(labels, "")
		} else {
			if strings.IndexByte(string(label), '.') >= 0 {
				return n, 0, parseErr("scope label", cur, fmt.Errorf("%w: %q contains a dot", ErrLabel, label))
			}
			labels = append(labels, string(label))
		}
		cur += 1 + l
	}
}

// decodeFirst undoes the half-ASCII encoding of the 32-byte first label.
func decodeFirst(label []byte, off int) (string, byte, error) {
	if len(label) != encodedLen {
		return "", 0, parseErr("name label", off, fmt.Errorf("%w: first label is %d bytes, want %d", ErrLabel, len(label), encodedLen))
	}
	var r [16]byte
	for i := range r {
		hi, lo := label[2*i]-'A', label[2*i+1]-'A'
		if hi > 0x0f || lo > 0x0f {
			return "", 0, parseErr("name label", off+1+2*i, fmt.Errorf("%w: bytes %q are not in 'A'..'P'", ErrLabel, label[2*i:2*i+2]))
		}
		r[i] = hi<<4 | lo
	}
	return trimLabel(r[:15]), r[15], nil
}

// trimLabel removes the padding of a 15-byte label: trailing spaces, or the NULs of
// the wildcard.
func trimLabel(b []byte) string {
	if b[0] == '*' && strings.Trim(string(b[1:]), "\x00") == "" {
		return "*"
	}
	return strings.TrimRight(string(b), " ")
}
