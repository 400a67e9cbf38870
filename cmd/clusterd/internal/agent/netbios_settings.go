package agent

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/netbios"
)

// netbiosSettings turns the request's NetBIOS fields into settings: names expanded
// (NAME → NAME<00>, NAME<20>), WINS addresses parsed, node type defaulted (H with a
// WINS server, B without).
func netbiosSettings(req api.ResourceRequest) (*consensus.NetBIOS, error) {
	if len(req.NetBIOSNames) == 0 {
		if len(req.WINS) > 0 || req.NodeType != "" || req.Scope != "" {
			return nil, fmt.Errorf("--wins, --node-type and --scope need at least one --netbios-name")
		}
		return nil, nil
	}
	names, err := netbios.ExpandNames(req.NetBIOSNames)
	if err != nil {
		return nil, err
	}
	nb := &consensus.NetBIOS{Scope: strings.ToLower(req.Scope)}
	for _, n := range names {
		nb.Names = append(nb.Names, n.String())
	}
	for _, w := range req.WINS {
		ip, err := netip.ParseAddr(strings.TrimSpace(w))
		if err != nil || !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() {
			return nil, fmt.Errorf("WINS server %q is not an IPv4 unicast address (NetBIOS name service runs over IPv4; e.g. --wins 198.18.0.1)", w)
		}
		nb.WINS = append(nb.WINS, ip)
	}
	nb.NodeType = strings.ToUpper(req.NodeType)
	switch {
	case nb.NodeType == "" && len(nb.WINS) > 0:
		nb.NodeType = "H"
	case nb.NodeType == "":
		nb.NodeType = "B"
	case nb.NodeType != "B" && nb.NodeType != "P" && nb.NodeType != "M" && nb.NodeType != "H":
		return nil, fmt.Errorf("NetBIOS node type %q is not known (use b, p, m or h)", req.NodeType)
	case nb.NodeType != "B" && len(nb.WINS) == 0:
		return nil, fmt.Errorf("node type %s needs a WINS server (give --wins ADDRESS, or use --node-type b)", nb.NodeType)
	}
	if len(req.Scope) > 0 && len(req.Scope) > 220 {
		return nil, fmt.Errorf("NetBIOS scope is %d characters, limit 220 (shorten --scope)", len(req.Scope))
	}
	return nb, nil
}
