package cluster

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/clusterd/clusterd/test/lab"
	"github.com/vishvananda/netlink"
)

// Holders returns the nodes whose eth0 carries ip right now, read with netlink.
func (c *Cluster) Holders(ip netip.Addr) ([]*lab.Host, error) {
	var out []*lab.Host
	for _, h := range c.Lab.Nodes() {
		has, err := HasAddr(h, ip)
		if err != nil {
			return nil, err
		}
		if has {
			out = append(out, h)
		}
	}
	return out, nil
}

// HasAddr reports whether h's eth0 carries ip.
func HasAddr(h *lab.Host, ip netip.Addr) (bool, error) {
	nh, err := h.Handle()
	if err != nil {
		return false, err
	}
	defer nh.Close()
	l, err := nh.LinkByName(h.Link)
	if err != nil {
		return false, err
	}
	as, err := nh.AddrList(l, netlink.FAMILY_ALL)
	if err != nil {
		return false, err
	}
	for _, a := range as {
		if got, ok := netip.AddrFromSlice(a.IP); ok && got.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}

// WaitHolder polls until exactly one node holds ip and returns it. A dead host
// (not, e.g. after its link went down) is not counted: its kernel may still carry
// the address, but nobody can reach it.
func (c *Cluster) WaitHolder(ip netip.Addr, limit time.Duration, not *lab.Host) (*lab.Host, error) {
	deadline := time.Now().Add(limit)
	for {
		all, err := c.Holders(ip)
		if err != nil {
			return nil, err
		}
		var hs []*lab.Host
		for _, h := range all {
			if h != not {
				hs = append(hs, h)
			}
		}
		if len(hs) == 1 {
			return hs[0], nil
		}
		if len(hs) > 1 {
			return nil, fmt.Errorf("%s is held by %d nodes at once: %v", ip, len(hs), hs)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("no single holder of %s within %s (holders %v)", ip, limit, hs)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Ping pings ip from h (3 tries, 200 ms apart) and reports success.
func Ping(ctx context.Context, h *lab.Host, ip netip.Addr) error {
	out, err := h.Run(ctx, "ping", "-c", "1", "-W", "1", ip.String())
	if err == nil {
		return nil
	}
	for i := 0; i < 3; i++ {
		time.Sleep(200 * time.Millisecond)
		if out, err = h.Run(ctx, "ping", "-c", "1", "-W", "1", ip.String()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("ping %s from %s: %v: %s", ip, h.Name, err, strings.TrimSpace(string(out)))
}

// NodeOf names the agent whose host has the MAC.
func (c *Cluster) NodeOf(mac string) string {
	for i, h := range c.Lab.Nodes() {
		if h.MAC.String() == mac {
			return fmt.Sprintf("n%d", i+1)
		}
	}
	return mac
}
