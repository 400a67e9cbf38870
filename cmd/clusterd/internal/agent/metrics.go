package agent

import (
	"net/http"

	"github.com/clusterd/clusterd/health/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the agent's Prometheus metrics, on its own registry, named
// clusterd_<subsystem>_<name>.
type metrics struct {
	reg           *prometheus.Registry
	renewalsSent  prometheus.Counter
	renewalsRecv  prometheus.Counter
	leaseLost     prometheus.Counter
	failoverPhase *prometheus.HistogramVec
	checkResults  *prometheus.CounterVec
	events        *prometheus.CounterVec
}

func newMetrics(a *Agent) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.renewalsSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "clusterd_lease_renewals_sent_total",
		Help: "Lease renewals this node sent to voters."})
	m.renewalsRecv = prometheus.NewCounter(prometheus.CounterOpts{Name: "clusterd_lease_renewals_answered_total",
		Help: "Lease renewals this node answered as a voter."})
	m.leaseLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "clusterd_lease_lost_total",
		Help: "Addresses dropped because their lease ran out while still assigned here."})
	m.failoverPhase = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "clusterd_failover_phase_seconds",
		Help:    "Duration of each failover phase: detect (last renewal heard to node declared down), commit (declared down to new assignment committed), address_up (assignment seen to address added), announce (address added to first announcement).",
		Buckets: []float64{.005, .01, .025, .05, .1, .15, .2, .25, .3, .5, 1, 2.5, 5}}, []string{"phase"})
	m.checkResults = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clusterd_health_check_results_total",
		Help: "Health check results by check and result."}, []string{"check", "result"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "clusterd_events_total",
		Help: "Events by id (1044, 1049, 1069, 1078, 1135, 1177, 1254, 4320, ...)."}, []string{"id"})
	m.reg.MustRegister(m.renewalsSent, m.renewalsRecv, m.leaseLost, m.failoverPhase, m.checkResults, m.events,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&stateCollector{a: a})
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// stateCollector reads gauges from the agent at scrape time.
type stateCollector struct{ a *Agent }

var (
	descRaftLeader  = prometheus.NewDesc("clusterd_raft_leader", "1 if this node is the raft leader.", nil, nil)
	descRaftIndex   = prometheus.NewDesc("clusterd_raft_applied_index", "Last raft index applied to this node's state.", nil, nil)
	descHeld        = prometheus.NewDesc("clusterd_addresses_held", "Cluster addresses this node holds in the kernel.", nil, nil)
	descAssigned    = prometheus.NewDesc("clusterd_resources_assigned", "Resources assigned to this node.", nil, nil)
	descResState    = prometheus.NewDesc("clusterd_resource_state", "Resources this node holds or waits for, by state.", []string{"state"}, nil)
	descAnnounced   = prometheus.NewDesc("clusterd_announcements_sent_total", "Gratuitous ARP / unsolicited NA frames sent.", []string{"link"}, nil)
	descAnnLimited  = prometheus.NewDesc("clusterd_announcements_rate_limited_total", "Announcement rounds delayed by the per-interface rate limit.", []string{"link"}, nil)
	descNetBIOS     = prometheus.NewDesc("clusterd_netbios_names", "NetBIOS names of this node's addresses, by state (registered, registering, refreshing, conflict, failed).", []string{"state"}, nil)
	descNodesAlive  = prometheus.NewDesc("clusterd_nodes_alive", "Nodes this node hears lease renewals from (meaningful on voters).", nil, nil)
	descNodesKnown  = prometheus.NewDesc("clusterd_nodes", "Nodes in the replicated node list.", nil, nil)
	descLeaseVoters = prometheus.NewDesc("clusterd_lease_voters", "Raft voters leases are renewed with.", nil, nil)
)

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRaftLeader, descRaftIndex, descHeld, descAssigned, descResState,
		descAnnounced, descAnnLimited, descNetBIOS, descNodesAlive, descNodesKnown, descLeaseVoters} {
		ch <- d
	}
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	a := c.a
	leader := 0.0
	if a.store.IsLeader() {
		leader = 1
	}
	st, idx := a.store.State()
	ch <- prometheus.MustNewConstMetric(descRaftLeader, prometheus.GaugeValue, leader)
	ch <- prometheus.MustNewConstMetric(descRaftIndex, prometheus.GaugeValue, float64(idx))
	ch <- prometheus.MustNewConstMetric(descHeld, prometheus.GaugeValue, float64(len(a.mgr.Recorded())))
	assigned := 0
	for _, asg := range st.Assignments {
		if asg.Node == a.cfg.NodeID {
			assigned++
		}
	}
	ch <- prometheus.MustNewConstMetric(descAssigned, prometheus.GaugeValue, float64(assigned))
	states := map[string]int{api.StateOnline: 0, api.StateOnlinePending: 0, api.StateFailed: 0}
	names := map[string]int{"registered": 0, "registering": 0, "refreshing": 0, "conflict": 0, "failed": 0}
	for _, o := range a.obs.snapshot() {
		states[o.State]++
		for _, n := range o.NetBIOS {
			names[n.State]++
		}
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(descResState, prometheus.GaugeValue, float64(n), s)
	}
	for s, n := range names {
		ch <- prometheus.MustNewConstMetric(descNetBIOS, prometheus.GaugeValue, float64(n), s)
	}
	for link, s := range a.ann.stats() {
		ch <- prometheus.MustNewConstMetric(descAnnounced, prometheus.CounterValue, float64(s.Sent), link)
		ch <- prometheus.MustNewConstMetric(descAnnLimited, prometheus.CounterValue, float64(s.RateLimited), link)
	}
	alive := 0
	for id := range st.Nodes {
		if a.live.Alive(id) {
			alive++
		}
	}
	ch <- prometheus.MustNewConstMetric(descNodesAlive, prometheus.GaugeValue, float64(alive))
	ch <- prometheus.MustNewConstMetric(descNodesKnown, prometheus.GaugeValue, float64(len(st.Nodes)))
	a.live.mu.Lock()
	voters := len(a.live.holder.Voters())
	a.live.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descLeaseVoters, prometheus.GaugeValue, float64(voters))
}
