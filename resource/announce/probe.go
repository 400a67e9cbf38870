package announce

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"

	"github.com/clusterd/clusterd/resource/sockopt"
)

// ErrProbeOverrun means the kernel dropped frames on the probe's socket, so an
// answer may have been lost and "not found" cannot be trusted.
var ErrProbeOverrun = errors.New("probe socket overrun")

// probeRcvBuf is the receive buffer asked for on probe sockets: about 5,000
// answers (a queued frame takes ~800 bytes of buffer), so answers to the
// probes of 1,000 addresses fit even if they arrive while we are still
// sending. The kernel default (~200 KiB) holds about 250.
const probeRcvBuf = 4 << 20

// Probe asks the link ifname whether another station holds addr, RFC 5227
// style: it sends cfg.Count ARP probes (sender IP 0.0.0.0), or for IPv6
// Neighbor Solicitations from :: to addr's solicited-node group, cfg.Interval
// apart, and listens until cfg.Wait after the first. It returns the hardware
// address of the first station that shows it holds addr (an ARP packet with
// sender IP addr, or a Neighbor Advertisement for addr), or found=false once
// the wait is over. Frames from the interface's own MAC never count, so a
// holder can probe its own addresses while announcing them: only a rival
// answers. Probe neither needs nor uses an address on ifname.
//
// It is used before taking over an address from a holder that may still be
// alive, and periodically by holders to find conflicts (event 1049). An error
// means the probe could not be made (no such interface, no CAP_NET_RAW), was
// unreliable (ErrProbeOverrun) or ctx ended; it never means "in use".
//
// Measured on a veth: an answered probe returns after ~0.2 ms plus ~10-15 ms
// to close the packet socket (the kernel waits for an RCU grace period); to
// probe many addresses use ProbeAll, which shares one socket.
func Probe(ctx context.Context, ifname string, addr netip.Addr, cfg ProbeConfig) (holder net.HardwareAddr, found bool, err error) {
	held, err := ProbeAll(ctx, ifname, []netip.Addr{addr}, cfg)
	if err != nil {
		return nil, false, err
	}
	holder, found = held[addr.Unmap().WithZone("")]
	return holder, found, nil
}

// ProbeAll probes many addresses on ifname at once, one socket per address
// family: probe round k of every address goes out, paced by cfg.Rate and
// cfg.Burst, no earlier than k*cfg.Interval after the start; addresses already
// answered are not probed again. After the last round it listens for the rest
// of cfg.Wait, or stops as soon as every address is answered. It returns the
// holder of each address found held; addresses nobody answered for are absent.
// IPv4 addresses are probed before IPv6 ones.
func ProbeAll(ctx context.Context, ifname string, addrs []netip.Addr, cfg ProbeConfig) (map[netip.Addr]net.HardwareAddr, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	var v4, v6 []netip.Addr
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
			return nil, fmt.Errorf("probe %s on %s: not a unicast address", a, ifname)
		}
		if a.Is4() {
			v4 = append(v4, a)
		} else {
			v6 = append(v6, a)
		}
	}
	held := make(map[netip.Addr]net.HardwareAddr)
	for _, fam := range [][]netip.Addr{v4, v6} {
		if len(fam) == 0 {
			continue
		}
		slices.SortFunc(fam, netip.Addr.Compare)
		fam = slices.Compact(fam)
		if err := probeFamily(ctx, ifname, fam, cfg, held); err != nil {
			return nil, err
		}
	}
	return held, nil
}

// probeFamily probes addrs, all IPv4 or all IPv6, on one socket.
func probeFamily(ctx context.Context, ifname string, addrs []netip.Addr, cfg ProbeConfig, held map[netip.Addr]net.HardwareAddr) error {
	etherType, filter, build := etherTypeARP, []bpf.RawInstruction(nil), arpProbeFrame
	if addrs[0].Is6() {
		etherType, filter, build = etherTypeIPv6, naFilter, nsProbeFrame
	}
	ifi, conn, err := listenFiltered(ifname, etherType, filter)
	if err != nil {
		return fmt.Errorf("probe %s: %w", addrs[0], err)
	}
	// Closing a packet socket waits for an RCU grace period (measured 5–21 ms): close
	// it in the background so a takeover does not wait for it after the answer is in.
	defer func() { go conn.Close() }()
	// Past net.core.rmem_max if it can; failing that, the default stays and
	// ErrProbeOverrun reports the consequence.
	sockopt.ConnReadBuffer(conn, probeRcvBuf)
	p := &prober{conn: conn, own: ifi.HardwareAddr, held: held, want: make(map[netip.Addr]bool, len(addrs))}
	for _, a := range addrs {
		f, err := build(ifi.HardwareAddr, a)
		if err != nil {
			return err
		}
		p.addrs = append(p.addrs, a)
		p.frames = append(p.frames, f)
		p.want[a] = true
	}
	stop := context.AfterFunc(ctx, func() { conn.SetReadDeadline(time.Unix(1, 0)) }) // interrupt a blocked read
	defer stop()
	if err := p.run(ctx, cfg); err != nil {
		return fmt.Errorf("probe on %s: %w", ifname, err)
	}
	if st, err := conn.Stats(); err == nil && st.Drops > 0 {
		return fmt.Errorf("probe on %s: kernel dropped %d frames: %w (probe fewer addresses at once or lower Rate)", ifname, st.Drops, ErrProbeOverrun)
	}
	return nil
}

// prober is the state of one probeFamily run.
type prober struct {
	conn   *packet.Conn
	own    net.HardwareAddr
	addrs  []netip.Addr
	frames [][]byte                        // frames[i] probes addrs[i]
	want   map[netip.Addr]bool             // addresses not yet answered
	held   map[netip.Addr]net.HardwareAddr // answers
	buf    [9216]byte                      // any Ethernet frame, jumbo included
}

func (p *prober) run(ctx context.Context, cfg ProbeConfig) error {
	start := time.Now()
	b := newBucket(cfg.Rate, cfg.Burst, start)
	var last time.Time // when the last probe went out
	for k := range cfg.Count {
		if err := p.readUntil(ctx, start.Add(time.Duration(k)*cfg.Interval)); err != nil {
			return err
		}
		for i, a := range p.addrs {
			if !p.want[a] {
				continue
			}
			if w := b.wait(time.Now(), 1); w > 0 {
				if err := p.readUntil(ctx, time.Now().Add(w)); err != nil {
					return err
				}
			}
			if len(p.want) == 0 {
				return nil
			}
			if !p.want[a] {
				continue // answered while we waited for the rate limit
			}
			dst := &packet.Addr{HardwareAddr: net.HardwareAddr(p.frames[i][:hardwareAddrLen])}
			if _, err := p.conn.WriteTo(p.frames[i], dst); err != nil {
				return fmt.Errorf("send probe %d of %d for %s: %w", k+1, cfg.Count, a, err)
			}
			b.take(time.Now(), 1)
			last = time.Now()
		}
	}
	// The last round gets what remains of Wait, counted from its end.
	return p.readUntil(ctx, last.Add(cfg.Wait-time.Duration(cfg.Count-1)*cfg.Interval))
}

// readUntil reads answers until t, or until every address is answered.
func (p *prober) readUntil(ctx context.Context, t time.Time) error {
	for len(p.want) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !time.Now().Before(t) {
			return nil
		}
		if err := p.conn.SetReadDeadline(t); err != nil {
			return err
		}
		n, _, err := p.conn.ReadFrom(p.buf[:])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // t has come, or ctx is done
		}
		if err != nil {
			return fmt.Errorf("read answers: %w", err)
		}
		if addr, holder, ok := heldIn(p.buf[:n], p.own); ok && p.want[addr] {
			delete(p.want, addr)
			p.held[addr] = holder
		}
	}
	return nil
}

// naFilter passes only IPv6 frames carrying ICMPv6 Neighbor Advertisements
// without extension headers, so a probe on a busy link does not copy every
// IPv6 frame. Offsets count from the Ethernet header (the kernel has already
// removed any VLAN tag).
var naFilter = func() []bpf.RawInstruction {
	raw, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 14 + 6, Size: 1}, // IPv6 next header
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: protoICMPv6, SkipFalse: 3},
		bpf.LoadAbsolute{Off: 14 + ipv6HeaderLen, Size: 1}, // ICMPv6 type
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: 136, SkipFalse: 1},
		bpf.RetConstant{Val: 1 << 16}, // whole frame
		bpf.RetConstant{Val: 0},       // drop
	})
	if err != nil {
		panic(err) // a constant program
	}
	return raw
}()
