package lab

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// Faults are made in the switch, not in the hosts: an nftables table `bridge cdlab`
// filters frames between bridge ports, so a fault acts on everything a host sends or
// receives on eth0 — ARP, neighbour discovery, broadcasts, cluster addresses — as a
// cable cut or a bad link would, and leaves the hosts' own nftables alone for the code
// under test. (This kernel has no netem: there is no delay or jitter, only loss.)

// ErrNoNft is returned by the fault methods when the nft command is missing.
var ErrNoNft = errors.New("nft not found in PATH (install the Debian package nftables: apt-get install nftables)")

// faults is the desired state of the switch's packet filter.
type faults struct {
	cut  map[[2]string]bool // [from, to] bridge ports between which frames are dropped
	loss map[string]int     // bridge port → percentage of frames dropped each way
}

// nftTable is the nftables table the lab owns in the switch namespace.
const nftTable = "bridge cdlab"

// ruleset renders f as one nft transaction that replaces the lab's table, so applying
// it is idempotent:
//
//	table bridge cdlab
//	delete table bridge cdlab
//	table bridge cdlab { set cut {...}; chain forward {...} }
//
// The forward hook of the bridge family sees every frame once per output port, also
// flooded broadcasts, so `iifname . oifname @cut` cuts exactly the given port pairs.
func (f faults) ruleset() string {
	var b strings.Builder
	fmt.Fprintf(&b, "table %s\ndelete table %s\ntable %s {\n", nftTable, nftTable, nftTable)
	b.WriteString("\tset cut {\n\t\ttype ifname . ifname\n")
	if len(f.cut) > 0 {
		pairs := slices.SortedFunc(maps.Keys(f.cut), func(a, b [2]string) int {
			return cmp.Or(cmp.Compare(a[0], b[0]), cmp.Compare(a[1], b[1]))
		})
		elems := make([]string, len(pairs))
		for i, p := range pairs {
			elems[i] = fmt.Sprintf("%q . %q", p[0], p[1])
		}
		fmt.Fprintf(&b, "\t\telements = { %s }\n", strings.Join(elems, ", "))
	}
	b.WriteString("\t}\n")
	b.WriteString("\tchain forward {\n\t\ttype filter hook forward priority filter; policy accept;\n")
	b.WriteString("\t\tiifname . oifname @cut drop\n")
	for _, port := range slices.Sorted(maps.Keys(f.loss)) {
		// numgen yields 0–99, so nft rejects `< 100`: total loss is a plain drop.
		match := fmt.Sprintf("numgen random mod 100 < %d ", f.loss[port])
		if f.loss[port] >= 100 {
			match = ""
		}
		fmt.Fprintf(&b, "\t\tiifname %q %sdrop\n", port, match)
		fmt.Fprintf(&b, "\t\toifname %q %sdrop\n", port, match)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}

// change applies edit to the lab's fault state and loads the result into the switch.
// If nft fails the state is rolled back.
func (l *Lab) change(edit func(f *faults)) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return ErrNoNft
	}
	l.faultMu.Lock()
	defer l.faultMu.Unlock()
	next := faults{cut: maps.Clone(l.faults.cut), loss: maps.Clone(l.faults.loss)}
	if next.cut == nil {
		next.cut = map[[2]string]bool{}
	}
	if next.loss == nil {
		next.loss = map[string]int{}
	}
	edit(&next)
	cmd := l.sw.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(next.ruleset())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load nftables table %q in %s: %w: %s", nftTable, l.sw.Name, err, strings.TrimSpace(string(out)))
	}
	l.faults = next
	return nil
}

// ClearFaults heals every partition and removes every loss setting.
func (l *Lab) ClearFaults() error {
	return l.change(func(f *faults) { clear(f.cut); clear(f.loss) })
}

// Rules returns the switch's fault rules as nftables lists them (`nft list table
// bridge cdlab`), for a test log or to check a setting; "" before the first fault.
func (l *Lab) Rules(ctx context.Context) (string, error) {
	l.faultMu.Lock()
	loaded := l.faults.cut != nil
	l.faultMu.Unlock()
	if !loaded {
		return "", nil
	}
	out, err := l.sw.Run(ctx, "nft", "list", "table", "bridge", "cdlab")
	return string(out), err
}

// errSwitch is returned when a fault method is called on the switch itself.
func (h *Host) errSwitch(op string) error {
	if h == h.lab.sw {
		return fmt.Errorf("%s on the switch %s: faults apply to hosts' links, call it on a node, the client or WINS", op, h.Name)
	}
	return nil
}

// Partition drops every frame between h and each peer, in both directions, at the
// switch (a cut cable between them; their other links keep working). Partitions add
// up: h.Partition(a) then h.Partition(b) cuts h from both.
func (h *Host) Partition(peers ...*Host) error {
	if err := h.errSwitch("Partition"); err != nil {
		return err
	}
	for _, p := range peers {
		if err := p.errSwitch("Partition"); err != nil {
			return err
		}
		if p.lab != h.lab {
			return fmt.Errorf("partition %s from %s: not in the same lab", h.Name, p.Name)
		}
	}
	return h.lab.change(func(f *faults) {
		for _, p := range peers {
			f.cut[[2]string{h.port, p.port}] = true
			f.cut[[2]string{p.port, h.port}] = true
		}
	})
}

// Heal removes every partition that involves h; partitions between other hosts stay.
func (h *Host) Heal() error {
	if err := h.errSwitch("Heal"); err != nil {
		return err
	}
	return h.lab.change(func(f *faults) {
		for pair := range f.cut {
			if pair[0] == h.port || pair[1] == h.port {
				delete(f.cut, pair)
			}
		}
	})
}

// Loss makes the switch drop percent (0–100) of the frames h sends and, separately,
// of the frames sent to h, at random (nftables `numgen random mod 100 < N drop`). A
// ping round trip thus fails with probability 1-(1-N/100)². Loss(0) removes it.
func (h *Host) Loss(percent int) error {
	if err := h.errSwitch("Loss"); err != nil {
		return err
	}
	if percent < 0 || percent > 100 {
		return fmt.Errorf("loss %d%% for %s: want 0 to 100", percent, h.Name)
	}
	return h.lab.change(func(f *faults) {
		if percent == 0 {
			delete(f.loss, h.port)
		} else {
			f.loss[h.port] = percent
		}
	})
}

// LinkDown sets the switch end of h's veth pair down, like pulling h's cable: eth0
// stays administratively up but loses carrier (NO-CARRIER, operstate LOWERLAYERDOWN)
// and its routes stop working. Equivalent to `ip -n SW link set ROLE down`.
func (h *Host) LinkDown() error { return h.setPort(false) }

// LinkUp plugs the cable back in (`ip -n SW link set ROLE up`) and returns once eth0
// has carrier again. Peers whose ARP or neighbour discovery for h failed during the
// outage retry on their own timers, so their first packet may take up to a second.
func (h *Host) LinkUp() error {
	if err := h.setPort(true); err != nil {
		return err
	}
	return h.waitCarrier(5 * time.Second)
}

func (h *Host) setPort(up bool) error {
	if err := h.errSwitch("LinkDown/LinkUp"); err != nil {
		return err
	}
	sw, err := h.lab.sw.Handle()
	if err != nil {
		return err
	}
	defer sw.Close()
	port, err := sw.LinkByName(h.port)
	if err != nil {
		return fmt.Errorf("find switch port %s of %s: %w", h.port, h.Name, err)
	}
	if up {
		err = sw.LinkSetUp(port)
	} else {
		err = sw.LinkSetDown(port)
	}
	if err != nil {
		return fmt.Errorf("set switch port %s of %s up=%v: %w", h.port, h.Name, up, err)
	}
	return nil
}
