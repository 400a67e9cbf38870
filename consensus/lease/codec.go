package lease

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Datagrams are JSON with a one-byte kind prefix. A 1,000-claim renewal is about
// 30 KB, within a UDP datagram; larger claim sets need another transport (see the
// README's limits).
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

// MarshalReply encodes a reply.
func MarshalReply(r Reply) ([]byte, error) { return marshal(kindReply, r) }

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
