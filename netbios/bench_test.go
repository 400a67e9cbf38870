package netbios

import (
	"net"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// BenchmarkNodeStatus measures node-status answers per second from one responder
// on loopback, one request in flight per client goroutine (-cpu sets how many).
func BenchmarkNodeStatus(b *testing.B) {
	n := newNode(b, "192.0.2.10", filesrv00, filesrv20)
	to := net.UDPAddrFromAddrPort(addrPort(n.conn))
	req, _ := nbns.NewNodeStatusRequest(1).AppendPack(nil)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for pb.Next() {
			if _, err := c.WriteTo(req, to); err != nil {
				b.Error(err)
				return
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			if _, _, err := c.ReadFrom(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "answers/s")
}

// BenchmarkAnswer is the responder's decision and encoding alone, without sockets.
func BenchmarkAnswer(b *testing.B) {
	r := NewResponder(ResponderConfig{Addr: vip10, Names: []nbns.Name{filesrv00, filesrv20}})
	var req nbns.Message
	w, _ := nbns.NewNodeStatusRequest(1).AppendPack(nil)
	var out []byte
	b.ReportAllocs()
	for b.Loop() {
		if err := req.Unpack(w); err != nil {
			b.Fatal(err)
		}
		out, _ = r.answer(&req).AppendPack(out[:0])
	}
}
