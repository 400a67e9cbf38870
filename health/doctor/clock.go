package doctor

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// ClockReader returns CLOCK_REALTIME and CLOCK_BOOTTIME.
type ClockReader func() (realtime, boottime time.Duration)

// ReadClocks reads CLOCK_REALTIME and CLOCK_BOOTTIME. Both advance at the same
// (NTP-slewed) rate, so their difference changes only when the wall clock is
// stepped (settimeofday, clock_settime, adjtimex ADJ_SETOFFSET) or the machine
// resumes from suspend.
func ReadClocks() (realtime, boottime time.Duration) {
	var r1, b, r2 unix.Timespec
	// Reading realtime on both sides of boottime halves the error of one pair.
	unix.ClockGettime(unix.CLOCK_REALTIME, &r1)
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &b)
	unix.ClockGettime(unix.CLOCK_REALTIME, &r2)
	return time.Duration(r1.Nano()/2 + r2.Nano()/2), time.Duration(b.Nano())
}

// MeasureStep samples the offset CLOCK_REALTIME − CLOCK_BOOTTIME twice, window
// apart, and returns how far it moved: the sum of wall-clock steps in between.
func MeasureStep(ctx context.Context, read ClockReader, window time.Duration) (time.Duration, error) {
	r1, b1 := read()
	t := time.NewTimer(window)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-t.C:
	}
	r2, b2 := read()
	return (r2 - b2) - (r1 - b1), nil
}

// stepLimit is the offset change counted as a step. Slewing moves realtime and
// boottime together; reading three clocks costs well under a microsecond; so
// anything near a millisecond within a one-second window was set, not slewed.
const stepLimit = time.Millisecond

// Sync is the kernel's NTP state (adjtimex(2) without changes).
type Sync struct {
	Synced   bool          // STA_UNSYNC clear: a time daemon disciplines the clock
	MaxError time.Duration // the kernel's maximum error estimate
}

// ReadSync asks the kernel whether a time daemon (chrony, ntpd,
// systemd-timesyncd) keeps the clock synchronised.
func ReadSync() (Sync, error) {
	var tx unix.Timex
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return Sync{}, fmt.Errorf("adjtimex: %w", err)
	}
	return Sync{
		Synced:   state != unix.TIME_ERROR && tx.Status&unix.STA_UNSYNC == 0,
		MaxError: time.Duration(tx.Maxerror) * time.Microsecond,
	}, nil
}

// Clock judges a measured step and the sync state. It never blocks: clusterd's
// leases run on CLOCK_BOOTTIME, which steps do not move; logs, events and TLS
// certificate validity use the wall clock.
func Clock(step, window time.Duration, stepErr error, s Sync, syncErr error) []Finding {
	f := Finding{Check: "clock", Subject: "steps"}
	switch {
	case stepErr != nil:
		f.Severity, f.Message = Info, fmt.Sprintf("clock steps not measured: %v", stepErr)
	case step >= stepLimit || step <= -stepLimit:
		f.Severity = Warn
		f.Message = fmt.Sprintf("the wall clock was stepped by %v during a %v sample (CLOCK_REALTIME moved against CLOCK_BOOTTIME): something sets the clock; clusterd's leases use CLOCK_BOOTTIME and are unaffected, but event times jump and a large step can make TLS certificates look expired or not yet valid", step, window)
		f.Fix = "run exactly one time daemon (chrony or systemd-timesyncd) that slews the clock, and stop whatever else sets it (a second daemon, a VM guest agent, ntpdate in cron)"
	default:
		f.Severity, f.Message = OK, fmt.Sprintf("no wall-clock step during a %v sample (offset moved %v)", window, step)
	}
	g := Finding{Check: "clock", Subject: "sync"}
	switch {
	case syncErr != nil:
		g.Severity, g.Message = Info, fmt.Sprintf("clock sync state unknown: %v", syncErr)
	case !s.Synced:
		g.Severity = Warn
		g.Message = "the kernel reports the clock unsynchronised (adjtimex: STA_UNSYNC): no time daemon disciplines it, so it drifts and may later be stepped"
		g.Fix = "install and enable chrony (apt-get install chrony) or systemd-timesyncd"
	default:
		g.Severity, g.Message = OK, fmt.Sprintf("the kernel reports the clock synchronised (maximum error %v)", s.MaxError)
	}
	return []Finding{f, g}
}
