package netbios

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/clusterd/clusterd/netbios/nbns"
)

const labBcast = "198.18.0.255"

// TestBNode: names claimed by broadcast on the lab subnet (no WINS), answered to
// nmblookup's broadcast query, defended against another node's broadcast
// registration, refused by a Samba nmbd that holds the name (event 4320 naming it),
// and released by broadcast on detach.
func TestBNode(t *testing.T) {
	lab := newSambaLab(t)
	// A Samba node (no WINS) on the other side holds HOSTNB<20>.
	conf := lab.conf(t, "peer", fmt.Sprintf(`  netbios name = HOSTNB
  server role = standalone server
  interfaces = %s/24
  bind interfaces only = yes
  local master = no
  domain master = no
  preferred master = no
`, labWINS))
	lab.nmbd(t, lab.wins, conf, "peer")
	// nmbd defends a name only once its own broadcast registration is done, which
	// is when it answers broadcast queries for it.
	within(t, 30*time.Second, "nmbd holding HOSTNB<20>", func() bool {
		out, _ := lab.nmblookup(lab.node, "-B", labBcast, "HOSTNB#20")
		return strings.Contains(out, labWINS+" HOSTNB<20>")
	})
	// A spy on the broadcast address beside nmbd (both SO_REUSEADDR get every broadcast).
	spy, err := lab.wins.dial(t, labBcast)
	if err != nil {
		t.Fatal(err)
	}

	hostnb := nbns.Name{Label: "HOSTNB", Suffix: 0x20}
	var rev, cev events
	conn, err := lab.node.dial(t, labVIP1)
	if err != nil {
		t.Fatal(err)
	}
	r := NewResponder(ResponderConfig{Conn: conn, Addr: netip.MustParseAddr(labVIP1), Names: []nbns.Name{filesrv20, hostnb}, NodeType: nbns.BNode, OnEvent: rev.add})
	run(t, r.Run)
	bconn, err := lab.node.dial(t, labBcast)
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(bconn, nil)
	l.Add(r)
	run(t, l.Run)
	c := NewClient(ClientConfig{
		Broadcast: netip.AddrPortFrom(netip.MustParseAddr(labBcast), Port),
		Endpoints: []Endpoint{r}, Names: []nbns.Name{filesrv20, hostnb}, NodeType: nbns.BNode, OnEvent: cev.add,
	})
	stop := run(t, c.Run)
	within(t, 5*time.Second, "FILESRV<20> claimed and HOSTNB<20> refused", func() bool {
		st := map[string]State{}
		for _, s := range c.Status() {
			st[s.Name.String()] = s.State
		}
		return st["FILESRV<20>"] == StateRegistered && st["HOSTNB<20>"] == StateConflict
	})
	if got := cev.list(); len(got) != 1 || got[0].Name != hostnb || len(got[0].Other) != 1 || got[0].Other[0] != netip.MustParseAddr(labWINS) {
		t.Errorf("client events %v, want one conflict for HOSTNB<20> naming %s", got, labWINS)
	}

	// Broadcast name query from the other side.
	out, err := lab.nmblookup(lab.wins, "-B", labBcast, "FILESRV#20")
	if err != nil || !strings.Contains(out, labVIP1+" FILESRV<20>") {
		t.Errorf("nmblookup -B %s FILESRV#20 (err %v):\n%s", labBcast, err, out)
	}
	// HOSTNB<20> is in conflict here: only nmbd answers for it.
	out, _ = lab.nmblookup(lab.wins, "-B", labBcast, "HOSTNB#20")
	if strings.Contains(out, labVIP1) {
		t.Errorf("a name in conflict was answered to a broadcast:\n%s", out)
	}

	// Another node claims FILESRV<20> by broadcast: refused by us.
	other, err := lab.wins.dial(t, labWINS)
	if err != nil {
		t.Fatal(err)
	}
	claim := nbns.NewRegistration(0x5151, filesrv20, 0, nbns.NBEntry{Addr: netip.MustParseAddr(labWINS)}, true)
	got := exchange(t, other, netip.AddrPortFrom(netip.MustParseAddr(labBcast), Port), claim, 2*time.Second)
	for got != nil && got.ID != 0x5151 {
		got = receive(t, other, 2*time.Second) // nmbd's answers to other traffic
	}
	if got == nil || got.RCode != nbns.RCodeActive || got.Opcode != nbns.OpRegister {
		t.Errorf("broadcast claim of our name got %v, want ACT_ERR", got)
	}
	within(t, 2*time.Second, "defended event", func() bool { return rev.count(EventNameConflict) == 1 })
	if e := rev.list()[0]; !e.Defended || e.Other[0] != netip.MustParseAddr(labWINS) || !strings.Contains(e.String(), "tried to register NetBIOS name FILESRV<20>") {
		t.Errorf("responder event %s, want FILESRV<20> defended against %s", e, labWINS)
	}

	// Detach: a broadcast release of FILESRV<20> (not of the name in conflict).
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	var released []string
	for m := receive(t, spy, 2*time.Second); m != nil; m = receive(t, spy, 500*time.Millisecond) {
		if m.Opcode == nbns.OpRelease && m.Flags&nbns.FlagB != 0 && len(m.Additionals) == 1 && m.Additionals[0].NB[0].Addr == netip.MustParseAddr(labVIP1) {
			released = append(released, m.Questions[0].Name.String())
		}
	}
	if len(released) != 1 || released[0] != "FILESRV<20>" {
		t.Errorf("broadcast releases seen %v, want [FILESRV<20>]", released)
	}
}
