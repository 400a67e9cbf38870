package main

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/consensus/lease"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/test/cluster"
)

// Pure measurements of the costs that grow with the number of resources, on the
// same data model the agents use (no lab): they explain what the lab shows.

// claims returns n lease claims named like the workload's resources, at epochs of a
// realistic size (raft indexes in the thousands).
func claims(n int) []lease.Claim {
	cs := make([]lease.Claim, n)
	for i := range cs {
		cs[i] = lease.Claim{Resource: fmt.Sprintf("vip-%05d", i+1), Epoch: 12345}
	}
	return cs
}

// renewalSize is the datagram size of a full renewal of n claims (the codec's JSON
// plus its one-byte kind), and the codec's error if it does not fit.
func renewalSize(n int) (int, error) {
	r := lease.Renewal{Node: "n1", Inc: 1 << 62, Seq: 1 << 20, Rev: 1 << 63, Claims: claims(n), Full: true}
	b, err := json.Marshal(r)
	if err != nil {
		return 0, err
	}
	_, err = lease.MarshalRenewal(r)
	return len(b) + 1, err
}

// renewalCapacity is the largest claim set that fits one lease datagram.
func renewalCapacity() int {
	lo, hi := 0, 100000
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if _, err := renewalSize(mid); err == nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// state builds a replicated state of n resources assigned round-robin to nodes.
func state(n, nodes int) consensus.State {
	st := consensus.NewState()
	for i := 1; i <= nodes; i++ {
		id := fmt.Sprintf("n%d", i)
		st.Nodes[id] = consensus.Node{ID: id, Voter: true, RaftAddr: fmt.Sprintf("198.18.0.%d:7401", 100+i), APIAddr: fmt.Sprintf("198.18.0.%d:7400", 100+i)}
	}
	for i, a := range cluster.AddrRange(firstAddr, n) {
		name := fmt.Sprintf("vip-%05d", i+1)
		st.Resources[name] = consensus.Resource{Name: name, Address: netip.PrefixFrom(a, 16), Interface: "eth0"}
		st.Assignments[name] = consensus.Assignment{Resource: name, Node: fmt.Sprintf("n%d", i%nodes+1), Epoch: 12345}
	}
	return st
}

// status builds the /v1/status answer of a state, every resource online.
func status(st consensus.State) api.Status {
	out := api.Status{Index: 1, Leader: "n1", Self: "n1"}
	for name, r := range st.Resources {
		out.Resources = append(out.Resources, api.ResourceStatus{Name: name, Address: r.Address.String(), Interface: r.Interface,
			Owner: st.Assignments[name].Node, Epoch: st.Assignments[name].Epoch, State: api.StateOnline})
	}
	return out
}

// timeIt runs f until a total of about d has passed and returns the mean per run.
func timeIt(d time.Duration, f func()) time.Duration {
	start, n := time.Now(), 0
	for n == 0 || time.Since(start) < d {
		f()
		n++
	}
	return time.Since(start) / time.Duration(n)
}

// limits is the model case: what grows with the number of resources, measured on the
// data model alone, to explain the lab's figures.
func (e *env) limits() {
	const cs = "limits"
	capacity := renewalCapacity()
	e.fig(cs, "lease renewal: most claims in one datagram", float64(capacity), "claims", 0,
		fmt.Sprintf("lease.MarshalRenewal, names vip-NNNNN, limit %d bytes (consensus/lease/codec.go)", lease.MaxDatagram),
		"a node claiming more sends no renewal at all, so it loses every lease")
	for _, n := range []int{2000, 2500} {
		size, err := renewalSize(n)
		note := "fits"
		if err != nil {
			note = "does not fit: " + err.Error()
		}
		e.fig(cs, fmt.Sprintf("lease renewal of %d claims", n), float64(size)/1000, "KB", float64(lease.MaxDatagram)/1000,
			"json.Marshal(lease.Renewal) + 1", note)
	}
	st := state(10000, 5)
	e.fig(cs, "State.Clone of 10,000 resources", ms(timeIt(2*time.Second, func() { st.Clone() })), "ms", 0,
		"consensus.State.Clone (what every store.State() call costs)", "")
	h, cs2000 := holderWithReplies(2000, 5)
	per := timeIt(2*time.Second, func() {
		for _, c := range cs2000 {
			h.Deadline(c)
		}
	})
	e.fig(cs, "lease deadlines of 2,000 claims, 5 voters", ms(per), "ms", 0,
		"lease.Holder.Deadline for every claim (what the agent does on every voter reply)",
		fmt.Sprintf("× 5 replies per 25 ms round = %.0f%% of a core", 100*float64(per)*5*40/float64(time.Second)))
	type snapshotFile struct { // consensus/fsm.go's snapshot: {"version","state","applied"}
		Version int             `json:"version"`
		State   consensus.State `json:"state"`
		Applied uint64          `json:"applied"`
	}
	snap, _ := json.Marshal(snapshotFile{Version: 1, State: st, Applied: 12345})
	e.fig(cs, "snapshot model: state of 10,000 resources as raft writes it", float64(len(snap)+1)/1024, "KB", 0,
		"json.Marshal of consensus/fsm.go's snapshot file (version, state, applied)", "model: the lab's snapshot of 5×100 checks it; at 10,000 the lab cluster never had a leader long enough to snapshot")
	e.fig(cs, "snapshot model: decoding it (what a restore parses)", ms(timeIt(2*time.Second, func() {
		var f snapshotFile
		json.Unmarshal(snap, &f)
	})), "ms", 0, "json.Unmarshal into the same structure", "")
	s := status(st)
	e.fig(cs, "status JSON of 10,000 resources", ms(timeIt(2*time.Second, func() { json.Marshal(s) })), "ms", 0,
		"json.Marshal(api.Status)", "")
}

// holderWithReplies is a holder of n claims that got one confirming reply from each
// of voters voters.
func holderWithReplies(n, voters int) (*lease.Holder, []lease.Claim) {
	cs := claims(n)
	h := lease.NewHolder(lease.Timers{Renew: 25 * time.Millisecond, Lease: 150 * time.Millisecond, Margin: 10 * time.Millisecond, Guard: 10 * time.Millisecond}, "n1", 1)
	var ids []string
	for i := 1; i <= voters; i++ {
		ids = append(ids, fmt.Sprintf("n%d", i))
	}
	h.SetVoters(ids)
	h.SetClaims(cs)
	for _, o := range h.Round(time.Second) {
		h.Receive(lease.Reply{Voter: o.Voter, Node: "n1", Seq: o.Renewal.Seq, Rev: o.Renewal.Rev})
	}
	return h, cs
}
