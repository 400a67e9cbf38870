package lease

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Datagrams are JSON with a one-byte kind prefix. Claim sets larger than
// Holder.ChunkBytes go in parts (Renewal.Part); reply lists too long for one datagram
// collapse to DeniedAll or TakeoverAll.
const (
	kindRenewal = 'R'
	kindReply   = 'A'
	// MaxDatagram bounds what is read and sent.
	MaxDatagram = 65000
)

// ErrTooLarge means a renewal does not fit one datagram.
var ErrTooLarge = errors.New("lease message too large for one datagram")

// MarshalRenewal encodes a renewal.
func MarshalRenewal(r Renewal) ([]byte, error) { return marshal(kindRenewal, r) }

// MarshalReply encodes a reply. Lists too long for one datagram are replaced by
// their safe summary: all denied, or all to be probed.
func MarshalReply(r Reply) ([]byte, error) {
	b, err := marshal(kindReply, r)
	if !errors.Is(err, ErrTooLarge) {
		return b, err
	}
	if len(r.Denied) > 0 {
		r.Denied, r.DeniedAll = nil, true
	}
	if b, err = marshal(kindReply, r); !errors.Is(err, ErrTooLarge) {
		return b, err
	}
	r.Takeover, r.TakeoverAll = nil, true
	return marshal(kindReply, r)
}

func marshal(kind byte, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > MaxDatagram {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b)+1, MaxDatagram)
	}
	return append([]byte{kind}, b...), nil
}

// Unmarshal decodes a datagram into a Renewal or a Reply.
func Unmarshal(b []byte) (*Renewal, *Reply, error) {
	if len(b) < 2 {
		return nil, nil, fmt.Errorf("lease datagram of %d bytes is too short", len(b))
	}
	switch b[0] {
	case kindRenewal:
		var r Renewal
		if err := json.Unmarshal(b[1:], &r); err != nil {
			return nil, nil, fmt.Errorf("lease renewal: %w", err)
		}
		if r.Node == "" {
			return nil, nil, errors.New("lease renewal without a node id")
		}
		return &r, nil, nil
	case kindReply:
		var r Reply
		if err := json.Unmarshal(b[1:], &r); err != nil {
			return nil, nil, fmt.Errorf("lease reply: %w", err)
		}
		return nil, &r, nil
	}
	return nil, nil, fmt.Errorf("lease datagram of unknown kind %q", b[0])
}
