package consensus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// tlsStream is raft's stream layer over mutual TLS: the listener requires a client
// certificate from the cluster's CA, and dials present this node's certificate and
// verify the peer's. A node with a certificate from another CA can neither join nor
// talk raft.
type tlsStream struct {
	net.Listener
	advertise net.Addr
	cfg       *tls.Config
}

func newTLSStream(bind string, advertise net.Addr, cfg *tls.Config) (*tlsStream, error) {
	ln, err := tls.Listen("tcp", bind, cfg)
	if err != nil {
		return nil, err
	}
	if advertise == nil {
		advertise = ln.Addr()
	}
	return &tlsStream{Listener: ln, advertise: advertise, cfg: cfg}, nil
}

// Dial opens a TLS connection to a raft peer.
func (s *tlsStream) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: timeout}, Config: s.cfg}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		var rec tls.RecordHeaderError
		if errors.As(err, &rec) {
			return nil, fmt.Errorf("raft peer %s does not speak TLS (all nodes must use --tls-*): %w", address, err)
		}
		return nil, err
	}
	return c, nil
}

// Addr is the advertised address.
func (s *tlsStream) Addr() net.Addr { return s.advertise }
