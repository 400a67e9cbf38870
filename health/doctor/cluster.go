package doctor

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/clusterd/clusterd/health/api"
)

// Cluster collects the cluster-specific inputs of a run from the API's status,
// the node's address record and flags, without duplicates.
type Cluster struct {
	Interfaces []Interface
	Addresses  []netip.Addr
	Peers      []Endpoint
}

// AddInterface notes that by (a resource name, "--interface", ...) names iface.
func (c *Cluster) AddInterface(iface, by string, v6 bool) {
	for i := range c.Interfaces {
		w := &c.Interfaces[i]
		if w.Name != iface {
			continue
		}
		w.V6 = w.V6 || v6
		if by != "" && !slices.Contains(w.By, by) {
			w.By = append(w.By, by)
		}
		return
	}
	w := Interface{Name: iface, V6: v6}
	if by != "" {
		w.By = []string{by}
	}
	c.Interfaces = append(c.Interfaces, w)
}

// AddAddress notes a cluster address.
func (c *Cluster) AddAddress(a netip.Addr) {
	if !slices.Contains(c.Addresses, a) {
		c.Addresses = append(c.Addresses, a)
	}
}

// AddStatus takes the resources' interfaces and addresses and the other nodes'
// endpoints from a /v1/status answer. self is this node's id; "" means the node
// that answered.
func (c *Cluster) AddStatus(st api.Status, self string) error {
	if self == "" {
		self = st.Self
	}
	var errs []error
	for _, r := range st.Resources {
		p, err := netip.ParsePrefix(r.Address)
		if err != nil {
			errs = append(errs, fmt.Errorf("resource %s: address %q: %w", r.Name, r.Address, err))
			continue
		}
		c.AddInterface(r.Interface, "resource "+r.Name, p.Addr().Is6())
		c.AddAddress(p.Addr())
	}
	for _, n := range st.Nodes {
		if n.ID == self {
			continue
		}
		for _, ep := range []Endpoint{{Kind: "raft", Addr: n.RaftAddr}, {Kind: "api", Addr: n.APIAddr}} {
			if ep.Addr == "" {
				continue
			}
			ep.Node, ep.State, ep.Leader = n.ID, n.State, n.Leader
			c.Peers = append(c.Peers, ep)
		}
	}
	return errors.Join(errs...)
}

// Recorded is one address in DATA_DIR/addresses.json, the record of the cluster
// addresses this node added (resource package, format version 1).
type Recorded struct {
	Address   netip.Prefix `json:"address"`
	Interface string       `json:"interface"`
}

// ReadRecord reads DATA_DIR/addresses.json; a missing file means none.
func ReadRecord(dataDir string) ([]Recorded, error) {
	path := filepath.Join(dataDir, "addresses.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read address record: %w", err)
	}
	var rec struct {
		Version   int        `json:"version"`
		Addresses []Recorded `json:"addresses"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("address record %s is corrupt: %w", path, err)
	}
	if rec.Version != 1 {
		return nil, fmt.Errorf("address record %s has version %d, this binary reads version 1", path, rec.Version)
	}
	return rec.Addresses, nil
}

// AddRecord takes the interfaces and addresses of an address record.
func (c *Cluster) AddRecord(rs []Recorded) {
	for _, r := range rs {
		c.AddInterface(r.Interface, "addresses.json", r.Address.Addr().Is6())
		c.AddAddress(r.Address.Addr())
	}
}

// RecordFinding reports what the address record holds.
func RecordFinding(dataDir string, rs []Recorded, err error) Finding {
	f := Finding{Check: "record", Subject: dataDir}
	path := filepath.Join(dataDir, "addresses.json")
	switch {
	case err != nil:
		f.Severity, f.Message = Warn, err.Error()
		f.Fix = "remove the listed addresses by hand with `ip addr del`, then delete the file (the agent rewrites it)"
	case len(rs) == 0:
		f.Severity, f.Message = OK, fmt.Sprintf("%s records no cluster addresses held by this node", path)
	default:
		var s []string
		for _, r := range rs {
			s = append(s, r.Address.String()+" on "+r.Interface)
		}
		f.Severity = Info
		f.Message = fmt.Sprintf("%s records the cluster addresses this node added (%d): %s (if no agent runs here, `clusterd release --data-dir %s` removes them)", path, len(rs), strings.Join(s, ", "), dataDir)
	}
	return f
}

// APIFinding reports how the agent's API answered GET /v1/status.
func APIFinding(url string, st api.Status, err error) Finding {
	f := Finding{Check: "api", Subject: url}
	switch {
	case errors.Is(err, api.ErrUnreachable):
		f.Severity = Warn
		f.Message = fmt.Sprintf("no agent answered at %s: interfaces and addresses come only from flags and the address record, peers are not checked", url)
		f.Fix = "start the agent, or give --api URL of a running node (or --config FILE with its api_addr); before the cluster exists, name --interface and --address"
	case err != nil:
		f.Severity = Warn
		f.Message = fmt.Sprintf("the agent at %s did not give its status: %v", url, err)
		f.Fix = "give the credentials the API asks for, or --api URL of another node"
	case st.Leader == "":
		f.Severity = Warn
		f.Message = fmt.Sprintf("the agent at %s answers, but the cluster has no raft leader (%d nodes known)", url, len(st.Nodes))
		f.Fix = "start a majority of the voters and check the peer lines below"
	default:
		f.Severity = OK
		f.Message = fmt.Sprintf("agent %s at %s answers: leader %s, %d nodes, %d resources", st.Self, url, st.Leader, len(st.Nodes), len(st.Resources))
	}
	return f
}
