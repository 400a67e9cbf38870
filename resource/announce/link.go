package announce

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
)

// writeTimeout bounds one frame write. A packet socket write normally returns
// in microseconds; it can only block when the socket's send buffer is full,
// and Cancel waits for a send in flight, so it must not wait long.
const writeTimeout = 100 * time.Millisecond

// linkSender sends announcement frames on one interface through an AF_PACKET
// socket. Its socket is bound to protocol 0, so it receives nothing and costs
// nothing while idle. After a failed write it closes the socket and opens a
// new one for the next round, looking the interface up again: that follows an
// interface that was deleted and re-created, or whose MAC changed.
type linkSender struct {
	link string
	conn *packet.Conn     // nil after a failure, until the next send reopens it
	mac  net.HardwareAddr // the interface's address when conn was opened
}

// openLink opens a sender on link, failing early if that cannot work.
func openLink(link string) (*linkSender, error) {
	l := &linkSender{link: link}
	if err := l.reopen(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *linkSender) reopen() error {
	ifi, conn, err := listen(l.link, 0)
	if err != nil {
		return err
	}
	l.conn, l.mac = conn, ifi.HardwareAddr
	return nil
}

// listen opens a raw packet socket on link for one EtherType (0: send only).
// Its errors say what to do about them.
func listen(link string, etherType int) (*net.Interface, *packet.Conn, error) {
	return listenFiltered(link, etherType, nil)
}

// listenFiltered is listen with a BPF filter applied before the socket is
// bound, so that no unwanted frame is ever queued.
func listenFiltered(link string, etherType int, filter []bpf.RawInstruction) (*net.Interface, *packet.Conn, error) {
	ifi, err := net.InterfaceByName(link)
	if err != nil {
		return nil, nil, fmt.Errorf("interface %s: %w (check the resource's interface name)", link, err)
	}
	if len(ifi.HardwareAddr) != hardwareAddrLen {
		return nil, nil, fmt.Errorf("interface %s has hardware address %q: ARP and NDP announcements need an Ethernet interface", link, ifi.HardwareAddr)
	}
	conn, err := packet.Listen(ifi, packet.Raw, etherType, &packet.Config{Filter: filter})
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, nil, fmt.Errorf("open packet socket on %s: %w (run as root or grant CAP_NET_RAW)", link, err)
		}
		return nil, nil, fmt.Errorf("open packet socket on %s: %w", link, err)
	}
	return ifi, conn, nil
}

// send writes one round: gratuitous ARP request and reply for IPv4, one
// unsolicited Neighbor Advertisement for IPv6.
func (l *linkSender) send(addr netip.Addr) (int, error) {
	if l.conn == nil {
		if err := l.reopen(); err != nil {
			return 0, err
		}
	}
	frames, err := roundFrames(l.mac, addr)
	if err != nil {
		return 0, err
	}
	for i, f := range frames {
		if err := l.write(f); err != nil {
			l.conn.Close()
			l.conn = nil
			return i, fmt.Errorf("announce %s on %s: %w", addr, l.link, err)
		}
	}
	return len(frames), nil
}

func (l *linkSender) write(frame []byte) error {
	if err := l.conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	// The frame carries its own Ethernet header; the kernel only wants a
	// destination for the sockaddr.
	_, err := l.conn.WriteTo(frame, &packet.Addr{HardwareAddr: net.HardwareAddr(frame[:hardwareAddrLen])})
	return err
}

func (l *linkSender) Close() error {
	if l.conn == nil {
		return nil
	}
	err := l.conn.Close()
	l.conn = nil
	return err
}

// roundFrames returns the frames of one announcement round of addr.
func roundFrames(mac net.HardwareAddr, addr netip.Addr) ([][]byte, error) {
	if addr.Is4() {
		return garpFrames(mac, addr)
	}
	f, err := unsolicitedNAFrame(mac, addr)
	if err != nil {
		return nil, err
	}
	return [][]byte{f}, nil
}
