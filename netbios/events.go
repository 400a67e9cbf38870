package netbios

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/clusterd/clusterd/netbios/nbns"
)

// Event ids, the Windows failover-clustering numbers operators search for.
const (
	EventInterfaceFailed = 1044 // the NetBIOS interface could not be created
	EventWINSFailed      = 1078 // registration with a WINS server failed
	EventNameConflict    = 4320 // a name is in conflict with another node
)

// Event is something the operator must hear about: a WINS server that does not
// answer or refuses a name (EventWINSFailed), or a name in conflict
// (EventNameConflict).
type Event struct {
	ID     int        // EventWINSFailed or EventNameConflict
	Name   nbns.Name  // the name concerned
	Addr   netip.Addr // our cluster address
	Server netip.AddrPort
	Other  []netip.Addr   // for a conflict: the other holder(s), where the protocol reveals them
	From   netip.AddrPort // for a conflict demand: who sent it
	RCode  nbns.RCode     // the server's answer, if it answered
	Tries  int            // for an unanswered request: how many were sent
	// Defended: someone else tried to register the name and the server refused them
	// after challenging us; the name stays ours.
	Defended bool
}

func (e Event) String() string {
	switch {
	case e.ID == EventNameConflict && e.Defended && len(e.Other) > 0:
		return fmt.Sprintf("%v tried to register NetBIOS name %v, held by %v, by broadcast from %v: refused with ACT_ERR; look for a second machine configured with this name (event %d)",
			e.Other[0], e.Name, e.Addr, e.Server, e.ID)
	case e.ID == EventNameConflict && e.Defended:
		return fmt.Sprintf("another node tried to register NetBIOS name %v, held by %v: WINS server %v challenged this address and kept the name here; look for a second machine configured with this name (event %d)",
			e.Name, e.Addr, e.Server, e.ID)
	case e.ID == EventNameConflict:
		who := "another node (the protocol did not reveal which)"
		if len(e.Other) > 0 {
			s := make([]string, len(e.Other))
			for i, a := range e.Other {
				s[i] = a.String()
			}
			who = strings.Join(s, ", ")
		}
		how := fmt.Sprintf("WINS server %v answered %v", e.Server, e.RCode)
		if e.From.IsValid() {
			how = fmt.Sprintf("%v sent a name conflict demand", e.From)
		}
		return fmt.Sprintf("NetBIOS name %v of %v is in conflict with %s (%s): it is answered negatively here and retried later; rename one of them or stop the other holder (event %d)",
			e.Name, e.Addr, who, how, e.ID)
	case e.Tries > 0:
		return fmt.Sprintf("WINS server %v did not answer %d requests for %v from %v: check that it runs and that UDP 137 is open between this node and it; retrying with backoff (event %d)",
			e.Server, e.Tries, e.Name, e.Addr, e.ID)
	}
	return fmt.Sprintf("WINS server %v refused %v for %v with %v: check the server's static entries and policy for this name; retrying with backoff (event %d)",
		e.Server, e.Name, e.Addr, e.RCode, e.ID)
}
