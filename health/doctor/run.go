package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Options says what to check. The cluster-specific parts (interfaces, addresses,
// peers) come from the API's status, the node's address record and flags.
type Options struct {
	Proc        string       // procfs root; "" means /proc
	Interfaces  []Interface  // interfaces the cluster's resources name
	Addresses   []netip.Addr // cluster addresses (IPv4 ones matter for UDP 137)
	Peers       []Endpoint   // other nodes' raft and API addresses
	Dial        DialFunc     // nil: a net.Dialer
	DialTimeout time.Duration
	ClockWindow time.Duration // how long to watch for clock steps
	Clock       ClockReader   // nil: ReadClocks
}

// Defaults for Options.
const (
	DefaultDialTimeout = time.Second // a LAN peer answers a TCP connect in well under a millisecond
	DefaultClockWindow = time.Second
)

// Run runs every check in the network namespace of the calling thread (lock it to
// the thread with runtime.LockOSThread to check another namespace). Findings come
// in a fixed order: capabilities, interfaces, sysctls, UDP 137, peers, clock.
func Run(ctx context.Context, o Options) []Finding {
	if o.Proc == "" {
		o.Proc = "/proc"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = DefaultDialTimeout
	}
	if o.ClockWindow <= 0 {
		o.ClockWindow = DefaultClockWindow
	}
	if o.Clock == nil {
		o.Clock = ReadClocks
	}
	// The clock sample waits out its window; the other checks run meanwhile.
	type stepResult struct {
		step time.Duration
		err  error
	}
	stepc := make(chan stepResult, 1)
	go func() {
		step, err := MeasureStep(ctx, o.Clock, o.ClockWindow)
		stepc <- stepResult{step, err}
	}()

	out := capabilityFindings(o.Proc)
	out = append(out, interfaceFindings(o.Proc, o.Interfaces)...)
	out = append(out, UDP137(ctx, o.Proc, o.Addresses)...)
	out = append(out, Peers(ctx, o.Peers, o.Dial, o.DialTimeout)...)
	sync, syncErr := ReadSync()
	st := <-stepc
	return append(out, Clock(st.step, o.ClockWindow, st.err, sync, syncErr)...)
}

func capabilityFindings(proc string) []Finding {
	eff, err := ReadCapEff(proc)
	if err != nil {
		return []Finding{{Check: "capability", Severity: Warn, Message: fmt.Sprintf("cannot read this process's capabilities: %v", err), Fix: "mount /proc"}}
	}
	unpriv, err := ReadSysctl(proc, "net.ipv4.ip_unprivileged_port_start")
	if err != nil {
		unpriv = 1024 // the kernel's default, and its value before the sysctl existed
	}
	return Capabilities(eff, unpriv)
}

func interfaceFindings(proc string, want []Interface) []Finding {
	var out []Finding
	if len(want) == 0 {
		out = append(out, Finding{Check: "interface", Severity: Warn,
			Message: "no interfaces to check: no agent answered and none were named",
			Fix:     "give --interface IF for each interface cluster addresses go on, or --api URL of a running node"})
	}
	links, err := ReadLinks()
	if err != nil {
		return append(out, Finding{Check: "interface", Severity: Warn, Message: err.Error()})
	}
	out = append(out, Interfaces(want, links)...)
	if v, err := ReadSysctl(proc, "net.ipv4.ip_nonlocal_bind"); err == nil {
		out = append(out, NonlocalBind(v))
	}
	all, allErr := ReadConf(proc, "all")
	for _, w := range want {
		if _, ok := links[w.Name]; !ok {
			continue // reported missing above
		}
		dev, err := ReadConf(proc, w.Name)
		if err = errors.Join(allErr, err); err != nil {
			out = append(out, Finding{Check: "sysctl", Subject: w.Name, Severity: Warn,
				Message: fmt.Sprintf("cannot read the sysctls of %s: %v", w.Name, err), Fix: "mount /proc (and /proc/sys)"})
			continue
		}
		out = append(out, InterfaceSysctls(w.Name, all, dev, w.V6)...)
	}
	return out
}
