package announce

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"
)

// Defaults for Config. Zero fields take these values.
const (
	// DefaultCount is how many rounds announce one takeover: one at once and two
	// repeats. CTDB uses 3 (CTDB_ARP_REPEAT); MetalLB keeps going for 5 s. One
	// round usually suffices; the repeats cover a receiver that dropped the first
	// round (back-to-back GARPs, a busy control plane, a link still negotiating
	// after a takeover) without keeping 1,000 addresses busy for long.
	DefaultCount = 3

	// DefaultInterval spaces the rounds of one address. 1.1 s is what CTDB and
	// MetalLB settled on for receivers that drop back-to-back GARPs: stacks hold
	// a freshly changed neighbour entry for about a second (Linux's locktime is
	// 1 s; it ignores non-gratuitous replies inside it), and a repeat just
	// outside such a window is the one that counts.
	DefaultInterval = 1100 * time.Millisecond

	// DefaultRate is the per-interface limit in frames per second (an IPv4 round
	// is two frames, an IPv6 round one). 2,000 frames/s announces the first round
	// of 1,000 IPv4 takeovers in about a second and is about 1 Mbit/s of
	// minimum-size frames, negligible on any link.
	DefaultRate = 2000

	// DefaultBurst is how many frames may leave back to back. 200 stays well
	// below Linux's default txqueuelen (1,000 frames) on our side and the
	// receivers' netdev_max_backlog (1,000 frames per CPU), so a mass takeover is
	// neither dropped by our own qdisc nor by a Linux neighbour's input queue.
	DefaultBurst = 200
)

// Config configures an Announcer. The zero value is usable.
type Config struct {
	// Count is the number of announcement rounds per Announce: the first as soon
	// as the rate limit allows, the rest Interval apart. Default DefaultCount.
	Count int

	// Interval is the least time between two rounds for one address. Default
	// DefaultInterval.
	Interval time.Duration

	// Refresh, if positive, keeps announcing an address every Refresh after its
	// Count rounds until Cancel, so switches whose forwarding entries age out
	// (typically after 300 s) keep learning where it is. Default 0: no refresh.
	Refresh time.Duration

	// Rate is the per-interface limit in frames per second. Default DefaultRate.
	Rate float64

	// Burst is the bucket size in frames; at least 2, since an IPv4 round is two
	// frames. Default DefaultBurst.
	Burst int

	// BeforeSend, if set, is called before every round. If it returns an error
	// nothing is sent and the address is unscheduled (as by Cancel). It runs on
	// Run's goroutine and must not call Cancel or Announce itself.
	BeforeSend func(addr netip.Addr) error

	// Logger receives events with keys "link", "vip" and "event". Default:
	// discard.
	Logger *slog.Logger
}

// withDefaults fills zero fields and rejects values that cannot work.
func (c Config) withDefaults() (Config, error) {
	if c.Count == 0 {
		c.Count = DefaultCount
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.Count < 0:
		return c, fmt.Errorf("announce: Count %d is negative (use 0 for the default %d)", c.Count, DefaultCount)
	case c.Interval < 0:
		return c, fmt.Errorf("announce: Interval %v is negative (use 0 for the default %v)", c.Interval, DefaultInterval)
	case c.Refresh < 0:
		return c, fmt.Errorf("announce: Refresh %v is negative (use 0 for no refresh)", c.Refresh)
	case !(c.Rate > 0):
		return c, fmt.Errorf("announce: Rate %v frames/s is not positive (use 0 for the default %d)", c.Rate, DefaultRate)
	case c.Burst < maxFramesPerRound:
		return c, fmt.Errorf("announce: Burst %d frames is below %d, the frames of one IPv4 round (use 0 for the default %d)", c.Burst, maxFramesPerRound, DefaultBurst)
	}
	return c, nil
}

// Defaults for ProbeConfig.
const (
	// DefaultProbeCount is the number of probes; RFC 5227's PROBE_NUM is 3 too,
	// so that one or two lost frames do not hide a holder.
	DefaultProbeCount = 3

	// DefaultProbeInterval spaces the probes. RFC 5227 uses 1–2 s for hosts that
	// join a network; a takeover cannot wait that long, and on a LAN an answer
	// comes back in well under a millisecond, so 20 ms only has to outlast a
	// momentary loss or a busy receiver.
	DefaultProbeInterval = 20 * time.Millisecond

	// DefaultProbeWait is how long to listen in total, counted from the first
	// probe: the last probe goes out at 40 ms and gets 20 ms to be answered.
	DefaultProbeWait = 60 * time.Millisecond
)

// ProbeConfig configures Probe. The zero value is usable.
type ProbeConfig struct {
	// Count is the number of probes sent. Default DefaultProbeCount.
	Count int
	// Interval is the time between probes. Default DefaultProbeInterval.
	Interval time.Duration
	// Wait is the total time to listen for an answer, from the first probe; at
	// least (Count-1)*Interval. Default DefaultProbeWait.
	Wait time.Duration
	// Rate and Burst limit probe frames per second on the link, as for
	// announcements (a separate bucket). They matter only to ProbeAll with
	// many addresses. Defaults DefaultRate and DefaultBurst.
	Rate  float64
	Burst int
}

func (c ProbeConfig) withDefaults() (ProbeConfig, error) {
	if c.Count == 0 {
		c.Count = DefaultProbeCount
	}
	if c.Interval == 0 {
		c.Interval = DefaultProbeInterval
	}
	if c.Wait == 0 {
		c.Wait = DefaultProbeWait
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	switch {
	case c.Count < 0:
		return c, fmt.Errorf("probe: Count %d is negative (use 0 for the default %d)", c.Count, DefaultProbeCount)
	case c.Interval < 0:
		return c, fmt.Errorf("probe: Interval %v is negative (use 0 for the default %v)", c.Interval, DefaultProbeInterval)
	case !(c.Rate > 0):
		return c, fmt.Errorf("probe: Rate %v frames/s is not positive (use 0 for the default %d)", c.Rate, DefaultRate)
	case c.Burst < 1:
		return c, fmt.Errorf("probe: Burst %d frames is below 1 (use 0 for the default %d)", c.Burst, DefaultBurst)
	case c.Wait < time.Duration(c.Count-1)*c.Interval:
		return c, fmt.Errorf("probe: Wait %v ends before the last of %d probes %v apart (make it at least %v)",
			c.Wait, c.Count, c.Interval, time.Duration(c.Count-1)*c.Interval)
	}
	return c, nil
}
