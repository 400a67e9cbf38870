package agent

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/netbios"
	"github.com/clusterd/clusterd/netbios/nbns"
)

// nbSpec is what a resource's NetBIOS interface is made of.
type nbSpec struct {
	name     string
	addr     netip.Prefix
	link     string
	names    []nbns.Name
	wins     []netip.AddrPort
	nodeType nbns.NodeType
	key      string // address + settings: a change re-attaches
	err      error  // the settings do not parse (reported as event 1044)
}

func specOf(name string, r consensus.Resource) nbSpec {
	nb := r.NetBIOS
	s := nbSpec{name: name, addr: r.Address, link: r.Interface,
		key: fmt.Sprintf("%s|%s|%v|%v|%s|%s", r.Address, r.Interface, nb.Names, nb.WINS, nb.NodeType, nb.Scope)}
	for _, raw := range nb.Names {
		nn, err := netbios.ParseName(raw)
		if err != nil {
			s.err = err
			return s
		}
		nn.Scope = nb.Scope
		s.names = append(s.names, nn)
	}
	for _, w := range nb.WINS {
		s.wins = append(s.wins, netip.AddrPortFrom(w, netbios.Port))
	}
	s.nodeType, s.err = netbios.ParseNodeType(nb.NodeType, len(nb.WINS) > 0)
	return s
}

// nbIndex is what the NetBIOS interfaces need from one revision of the replicated
// state, computed once per revision instead of once per resource and lookup: the
// spec of every resource with NetBIOS names, and who carries each name.
type nbIndex struct {
	rev   uint64
	count int                 // resources in the state it was built from
	specs map[string]nbSpec   // by resource name
	peers map[string][]nbPeer // by upper-case name without scope, e.g. "FILESRV<20>"
}

// nbPeer is one resource carrying a name.
type nbPeer struct {
	resource string
	addr     netip.Addr
}

// buildIndex indexes st's resources that carry NetBIOS names.
func buildIndex(st consensus.State) *nbIndex {
	x := &nbIndex{rev: st.Revision, count: len(st.Resources), specs: map[string]nbSpec{}, peers: map[string][]nbPeer{}}
	for name, r := range st.Resources {
		if r.NetBIOS == nil || len(r.NetBIOS.Names) == 0 {
			continue
		}
		x.specs[name] = specOf(name, r)
		for _, raw := range r.NetBIOS.Names {
			k := strings.ToUpper(raw)
			x.peers[k] = append(x.peers[k], nbPeer{resource: name, addr: r.Address.Addr()})
		}
	}
	return x
}

// current reports whether x still describes st.
func (x *nbIndex) current(st consensus.State) bool {
	return x != nil && x.rev == st.Revision && x.count == len(st.Resources)
}

// peersOf lists the addresses of the resources other than self that carry n: a
// name registered from two cluster addresses (on this node or another) is not a
// conflict, and survivors of a release are registered again.
func (x *nbIndex) peersOf(self string, n nbns.Name) []netip.Addr {
	if x == nil {
		return nil
	}
	n.Scope = ""
	var out []netip.Addr
	for _, p := range x.peers[strings.ToUpper(n.String())] {
		if p.resource != self {
			out = append(out, p.addr)
		}
	}
	return out
}
