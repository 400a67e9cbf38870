package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"
)

// A classic pcap file (what `tcpdump -w` writes): a 24-byte header whose magic
// gives byte order and timestamp resolution, then records of a 16-byte header and
// the captured bytes.
const (
	pcapMagicMicro = 0xa1b2c3d4
	pcapMagicNano  = 0xa1b23c4d
	linkEthernet   = 1
	// maxRecord bounds one record; a larger length means a corrupt file.
	maxRecord = 1 << 18
)

// frame is one captured Ethernet frame.
type frame struct {
	At   time.Time
	Data []byte
}

// parsePcap decodes a classic pcap file of Ethernet frames. A record cut short at
// the end (tcpdump killed mid-write) ends the list without an error.
func parsePcap(b []byte) ([]frame, error) {
	if len(b) < 24 {
		return nil, fmt.Errorf("pcap: %d bytes, shorter than the 24-byte file header", len(b))
	}
	var bo binary.ByteOrder
	var nano bool
	switch m := binary.LittleEndian.Uint32(b); {
	case m == pcapMagicMicro || m == pcapMagicNano:
		bo, nano = binary.LittleEndian, m == pcapMagicNano
	case binary.BigEndian.Uint32(b) == pcapMagicMicro || binary.BigEndian.Uint32(b) == pcapMagicNano:
		bo, nano = binary.BigEndian, binary.BigEndian.Uint32(b) == pcapMagicNano
	default:
		return nil, fmt.Errorf("pcap: magic %#x is not a classic pcap file (pcapng is not read)", m)
	}
	if lt := bo.Uint32(b[20:]) & 0xffff; lt != linkEthernet {
		return nil, fmt.Errorf("pcap: link type %d, want %d (Ethernet)", lt, linkEthernet)
	}
	var out []frame
	for off := 24; off+16 <= len(b); {
		sec, frac := bo.Uint32(b[off:]), bo.Uint32(b[off+4:])
		incl := int(bo.Uint32(b[off+8:]))
		if incl > maxRecord {
			return out, fmt.Errorf("pcap: record at offset %d claims %d bytes (limit %d)", off, incl, maxRecord)
		}
		off += 16
		if off+incl > len(b) {
			break
		}
		ns := int64(frac) * 1000
		if nano {
			ns = int64(frac)
		}
		out = append(out, frame{At: time.Unix(int64(sec), ns), Data: b[off : off+incl]})
		off += incl
	}
	return out, nil
}

func readPcap(path string) ([]frame, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parsePcap(b)
}

// garp is a gratuitous ARP frame: sender IP = target IP.
type garp struct {
	At  time.Time
	MAC string // Ethernet source
	IP  netip.Addr
}

const (
	etherARP  = 0x0806
	etherIPv4 = 0x0800
)

// parseGARP returns the frame as a gratuitous ARP (request or reply), if it is one.
func parseGARP(f frame) (garp, bool) {
	d := f.Data
	if len(d) < 14+28 || binary.BigEndian.Uint16(d[12:]) != etherARP {
		return garp{}, false
	}
	a := d[14:]
	if binary.BigEndian.Uint16(a[0:]) != 1 || binary.BigEndian.Uint16(a[2:]) != etherIPv4 || a[4] != 6 || a[5] != 4 {
		return garp{}, false
	}
	sender, _ := netip.AddrFromSlice(a[14:18])
	target, _ := netip.AddrFromSlice(a[24:28])
	if sender != target {
		return garp{}, false
	}
	return garp{At: f.At, MAC: net.HardwareAddr(d[6:12]).String(), IP: sender}, true
}

// NetBIOS name service opcodes (RFC 1002 4.2.1.1) the benchmark counts.
const (
	nbnsRegistration = 5
	nbnsRelease      = 6
	nbnsRefresh      = 8
	nbnsMultihomed   = 15
)

// nbnsPacket is a NetBIOS name service request on UDP 137.
type nbnsPacket struct {
	At     time.Time
	Src    netip.Addr
	Opcode int
	Name   string // the question name, "NAME<xx>" ("" if not decodable)
}

// parseNBNS returns the frame as a NetBIOS name service request (not a response),
// if it is one: IPv4, UDP to port 137, the NBNS header's R bit clear.
func parseNBNS(f frame) (nbnsPacket, bool) {
	d := f.Data
	if len(d) < 14+20 || binary.BigEndian.Uint16(d[12:]) != etherIPv4 {
		return nbnsPacket{}, false
	}
	ip := d[14:]
	ihl := int(ip[0]&0x0f) * 4
	if ip[0]>>4 != 4 || ihl < 20 || ip[9] != 17 || len(ip) < ihl+8+12 {
		return nbnsPacket{}, false
	}
	udp := ip[ihl:]
	if binary.BigEndian.Uint16(udp[2:]) != 137 {
		return nbnsPacket{}, false
	}
	flags := binary.BigEndian.Uint16(udp[8+2:])
	if flags&0x8000 != 0 {
		return nbnsPacket{}, false
	}
	src, _ := netip.AddrFromSlice(ip[12:16])
	return nbnsPacket{At: f.At, Src: src, Opcode: int(flags>>11) & 0xf, Name: questionName(udp[8+12:])}, true
}

// questionName decodes the first-level encoding of a question name (RFC 1001
// 14.1): a 32-byte label of nibbles as 'A'+n, giving 15 name bytes padded with
// spaces and the suffix byte.
func questionName(b []byte) string {
	if len(b) < 33 || b[0] != 32 {
		return ""
	}
	var raw [16]byte
	for i := range raw {
		hi, lo := b[1+2*i]-'A', b[2+2*i]-'A'
		if hi > 15 || lo > 15 {
			return ""
		}
		raw[i] = hi<<4 | lo
	}
	return fmt.Sprintf("%s<%02x>", strings.TrimRight(string(raw[:15]), " "), raw[15])
}

// nbnsCount is what countNBNS found.
type nbnsCount struct {
	packets int                  // matching packets, repeats included
	first   map[string]time.Time // "ADDR NAME<xx>" → first packet
	last    time.Time            // the latest of the first packets: when the set was complete
}

// countNBNS counts requests with one of the opcodes, at or after since, whose
// "source-address name" is in want.
func countNBNS(frames []frame, want map[string]bool, since time.Time, opcodes ...int) nbnsCount {
	c := nbnsCount{first: map[string]time.Time{}}
	for _, f := range frames {
		p, ok := parseNBNS(f)
		if !ok || p.At.Before(since) || !slices.Contains(opcodes, p.Opcode) {
			continue
		}
		key := p.Src.String() + " " + p.Name
		if !want[key] {
			continue
		}
		c.packets++
		if _, seen := c.first[key]; !seen {
			c.first[key] = p.At
			if p.At.After(c.last) {
				c.last = p.At
			}
		}
	}
	return c
}

// rateStats summarises announcements per sending interface.
type rateStats struct {
	Frames    int       // gratuitous ARP frames in all
	Senders   int       // distinct sending MACs
	MaxWindow int       // most frames one MAC sent within any window (sliding)
	MaxMAC    string    // the MAC that did
	First     time.Time // first and last frame
	Last      time.Time
}

// garpRate finds, per sending MAC, the most frames within any window-long span (a
// sliding window: the token bucket's bound Burst + Rate×window holds for every
// span, not only for aligned ones).
func garpRate(gs []garp, window time.Duration) rateStats {
	var st rateStats
	by := map[string][]time.Time{}
	for _, g := range gs {
		by[g.MAC] = append(by[g.MAC], g.At)
		if st.First.IsZero() || g.At.Before(st.First) {
			st.First = g.At
		}
		if g.At.After(st.Last) {
			st.Last = g.At
		}
	}
	st.Frames, st.Senders = len(gs), len(by)
	macs := make([]string, 0, len(by))
	for m := range by {
		macs = append(macs, m)
	}
	slices.Sort(macs)
	for _, mac := range macs {
		ts := by[mac]
		slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
		lo := 0
		for hi := range ts {
			for ts[hi].Sub(ts[lo]) >= window {
				lo++
			}
			if n := hi - lo + 1; n > st.MaxWindow {
				st.MaxWindow, st.MaxMAC = n, mac
			}
		}
	}
	return st
}

// errNoFrames means a capture held none of the frames looked for.
var errNoFrames = errors.New("no matching frames in the capture")
