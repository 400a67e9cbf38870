package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/health/api"
)

// backend serves the API from the agent.
type backend struct{ a *Agent }

var _ api.Backend = backend{}

// commit applies a command on the leader, mapping consensus errors to API errors.
func (a *Agent) commit(ctx context.Context, cmd consensus.Command) (uint64, error) {
	idx, err := a.store.Apply(ctx, cmd)
	switch {
	case err == nil:
		return idx, nil
	case errors.Is(err, consensus.ErrDuplicateName), errors.Is(err, consensus.ErrDuplicateAddress):
		return 0, fmt.Errorf("%w: %v", api.ErrConflict, err)
	case errors.Is(err, consensus.ErrNotFound), errors.Is(err, consensus.ErrUnknownNode):
		return 0, fmt.Errorf("%w: %v", api.ErrNotFound, err)
	case errors.Is(err, consensus.ErrNotLeader):
		return 0, fmt.Errorf("%w: %v", api.ErrNoLeader, err)
	}
	return 0, err
}

func (b backend) Leader() (bool, string) { return b.a.leaderAPI() }

func (a *Agent) leaderAPI() (bool, string) {
	if a.store.IsLeader() {
		return true, ""
	}
	id, _ := a.store.Leader()
	if id == "" {
		return false, ""
	}
	st, _ := a.store.State()
	n, ok := st.Nodes[id]
	if !ok || n.APIAddr == "" {
		return false, ""
	}
	return false, a.scheme() + n.APIAddr
}

func (a *Agent) nodeIDs() []string {
	st := a.live.stateView() // shared view: no deep copy (called every lease round)
	ids := make([]string, 0, len(st.Nodes))
	for id := range st.Nodes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// localView is the body of GET /v1/local: this node's observations.
type localView struct {
	Node      string                      `json:"node"`
	Resources map[string]localObservation `json:"resources"`
}

type localObservation struct {
	State   string           `json:"state"`
	Reason  string           `json:"reason,omitempty"`
	Event   int              `json:"event,omitempty"`
	Epoch   uint64           `json:"epoch"`
	NetBIOS []api.NameStatus `json:"netbios,omitempty"`
}

func (a *Agent) localView() localView {
	v := localView{Node: a.cfg.NodeID, Resources: map[string]localObservation{}}
	for name, o := range a.obs.snapshot() {
		v.Resources[name] = localObservation{State: o.State, Reason: o.Reason, Event: o.Event, Epoch: o.Epoch, NetBIOS: o.NetBIOS}
	}
	return v
}

// observations gathers every node's local view: this node's directly, the others'
// over their APIs in parallel, each bounded by a short timeout.
func (a *Agent) observations(ctx context.Context, nodes map[string]consensus.Node) map[string]*localView {
	out := make(map[string]*localView)
	var mu sync.Mutex
	var wg sync.WaitGroup
	self := a.localView()
	out[a.cfg.NodeID] = &self
	client := &http.Client{Timeout: 300 * time.Millisecond, Transport: a.peerTransport()}
	for id, n := range nodes {
		if id == a.cfg.NodeID || n.APIAddr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.scheme()+n.APIAddr+"/v1/local", nil)
			if err != nil {
				return
			}
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			defer resp.Body.Close()
			var v localView
			if json.NewDecoder(resp.Body).Decode(&v) == nil {
				mu.Lock()
				out[id] = &v
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func (b backend) Status(ctx context.Context) (api.Status, error) {
	a := b.a
	st, idx := a.store.State()
	leaderID, _ := a.store.Leader()
	obs := a.observations(ctx, st.Nodes)
	out := api.Status{Index: idx, Leader: leaderID, Self: a.cfg.NodeID, Nodes: []api.NodeStatus{}, Resources: []api.ResourceStatus{},
		Maintenance: st.Maintenance, MaintenanceReason: st.MaintenanceReason}
	held := map[string]int{}
	for _, asg := range st.Assignments {
		if asg.Node != "" {
			held[asg.Node]++
		}
	}
	servers := map[string]bool{}
	if srv, err := a.store.Servers(); err == nil {
		for _, s := range srv {
			servers[s.ID] = s.Voter
		}
	}
	for _, id := range sortedIDs(st.Nodes) {
		n := st.Nodes[id]
		state := string(consensus.NodeUp)
		switch {
		case obs[id] == nil:
			state = string(consensus.NodeDown)
		case n.Draining:
			state = string(consensus.NodeDraining)
		}
		voter, inRaft := servers[id]
		if !inRaft {
			voter = n.Voter
		}
		out.Nodes = append(out.Nodes, api.NodeStatus{ID: id, State: state, Leader: id == leaderID, Voter: voter,
			RaftAddr: n.RaftAddr, APIAddr: n.APIAddr, Held: held[id]})
	}
	for _, name := range sortedIDs(st.Resources) {
		r := st.Resources[name]
		asg := st.Assignments[name]
		rs := api.ResourceStatus{Name: name, Address: r.Address.String(), Interface: r.Interface, Owner: asg.Node, Epoch: asg.Epoch, Group: r.Group}
		var o observation
		v := obs[asg.Node]
		if v != nil {
			lo := v.Resources[name]
			o = observation{State: lo.State, Reason: lo.Reason, Event: lo.Event, Epoch: lo.Epoch}
			if lo.Epoch == asg.Epoch {
				rs.NetBIOS = lo.NetBIOS
			}
		}
		rs.State, rs.Reason, rs.Event = ownerObservation(asg, r, o, v != nil)
		out.Resources = append(out.Resources, rs)
	}
	return out, nil
}

func sortedIDs[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func (b backend) AddResource(ctx context.Context, req api.ResourceRequest) (api.WriteResult, error) {
	r, err := b.a.toResource(req)
	if err != nil {
		return api.WriteResult{}, err
	}
	st, _ := b.a.store.State()
	if _, dup := st.Resources[r.Name]; dup {
		return api.WriteResult{}, fmt.Errorf("%w: resource %q already exists (remove it first, or use `clusterd apply -f` to change it)", api.ErrConflict, r.Name)
	}
	idx, err := b.a.commit(ctx, consensus.CreateResource(r))
	return api.WriteResult{Index: idx}, err
}

func (b backend) RemoveResource(ctx context.Context, name string) (api.WriteResult, error) {
	st, _ := b.a.store.State()
	if _, ok := st.Resources[name]; !ok {
		return api.WriteResult{}, fmt.Errorf("%w: no resource %q (list them with `clusterd resource list`)", api.ErrNotFound, name)
	}
	idx, err := b.a.commit(ctx, consensus.DeleteResource(name))
	return api.WriteResult{Index: idx}, err
}

func (b backend) Join(ctx context.Context, req api.JoinRequest) (api.WriteResult, error) {
	a := b.a
	if !nodeIDRe.MatchString(req.ID) {
		return api.WriteResult{}, fmt.Errorf("%w: node id %q is not valid (1-63 letters, digits, '-', '_', '.')", api.ErrInvalid, req.ID)
	}
	if err := checkHostPort(req.RaftAddr); err != nil {
		return api.WriteResult{}, fmt.Errorf("%w: raft address: %v", api.ErrInvalid, err)
	}
	st, _ := a.store.State()
	if n, ok := st.Nodes[req.ID]; ok && (n.RaftAddr != req.RaftAddr || n.APIAddr != req.APIAddr) && a.live.Alive(req.ID) {
		return api.WriteResult{}, fmt.Errorf("%w: node id %q is already in the cluster at %s and alive (give the new node another --node-id, or `clusterd leave %s` first)", api.ErrConflict, req.ID, n.RaftAddr, req.ID)
	}
	for id, n := range st.Nodes {
		if id != req.ID && n.RaftAddr == req.RaftAddr {
			return api.WriteResult{}, fmt.Errorf("%w: raft address %s already belongs to node %q (each node needs its own --raft-addr)", api.ErrConflict, req.RaftAddr, id)
		}
	}
	var err error
	if req.Voter {
		err = a.store.AddVoter(req.ID, req.RaftAddr)
	} else {
		err = a.store.AddNonvoter(req.ID, req.RaftAddr)
	}
	if err != nil {
		return api.WriteResult{}, fmt.Errorf("add %s to the raft configuration: %w", req.ID, err)
	}
	prev := st.Nodes[req.ID]
	idx, err := a.commit(ctx, consensus.PutNode(consensus.Node{ID: req.ID, RaftAddr: req.RaftAddr, APIAddr: req.APIAddr, Voter: req.Voter, Draining: prev.Draining, Labels: prev.Labels}))
	if err == nil {
		a.log.Info("node joined", "node", req.ID, "raft", req.RaftAddr, "voter", req.Voter)
	}
	return api.WriteResult{Index: idx}, err
}

func (b backend) RemoveNode(ctx context.Context, id string) (api.WriteResult, error) {
	a := b.a
	st, _ := a.store.State()
	if _, ok := st.Nodes[id]; !ok {
		return api.WriteResult{}, fmt.Errorf("%w: no node %q (list them with `clusterd nodes`)", api.ErrNotFound, id)
	}
	if id == a.cfg.NodeID {
		return api.WriteResult{}, fmt.Errorf("%w: node %q is the raft leader answering this call; drain it, then run leave against another node's API", api.ErrForbidden, id)
	}
	if err := a.store.RemoveServer(id); err != nil {
		return api.WriteResult{}, fmt.Errorf("remove %s from the raft configuration: %w", id, err)
	}
	idx, err := a.commit(ctx, consensus.RemoveNode(id))
	if err == nil {
		a.log.Warn("node removed", "event", EventNodeRemoved, "node", id)
	}
	return api.WriteResult{Index: idx}, err
}

func (b backend) SetDraining(ctx context.Context, node string, on bool) (api.WriteResult, error) {
	st, _ := b.a.store.State()
	if _, ok := st.Nodes[node]; !ok {
		return api.WriteResult{}, fmt.Errorf("%w: no node %q (list them with `clusterd nodes`)", api.ErrNotFound, node)
	}
	idx, err := b.a.commit(ctx, consensus.SetDraining(node, on))
	return api.WriteResult{Index: idx}, err
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
