package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/clusterd/clusterd/consensus"
	"github.com/clusterd/clusterd/consensus/lease"
	"github.com/clusterd/clusterd/health"
	"github.com/clusterd/clusterd/health/api"
	"github.com/clusterd/clusterd/netbios"
	"github.com/clusterd/clusterd/resource"
	"github.com/clusterd/clusterd/resource/announce"
	"github.com/vishvananda/netlink"
)

// Agent is one node's daemon.
type Agent struct {
	cfg    *Config
	timers Timers
	log    *slog.Logger
	stdout io.Writer

	handle   *netlink.Handle
	mgr      *resource.Manager
	store    *consensus.Store
	live     *leases
	obs      *observed
	moves    *moveLocks
	ann      *announcers
	nb       *nbIfaces
	events   *eventLog
	met      *metrics
	tl       timelines
	token    string
	tls      *tlsMaterial
	chk      checker
	hm       healthMoves
	lag      *health.LoopLag
	hookRuns hookRuns
	fence    *fencer   // the fencing companion (nil until started)
	keep     keepState // addresses held without a lease (on_quorum_loss = keep)
	grp      groupRuns // reconciler only: groups whose online hook ran here

	specMu sync.Mutex // guards specs
	specs  map[string]consensus.Resource

	wake chan struct{} // asks the reconciler for a pass

	heldEpochs map[string]uint64 // reconciler only: epoch each held resource was added under
	conflicts  conflicts
	busy       map[resource.Address]busyAddr // reconciler only: takeovers still answered elsewhere
}

// Run starts the agent and blocks until ctx ends; then it releases this node's
// addresses and stops in order. stdout gets the one-line "ready" banner.
func Run(ctx context.Context, cfg *Config, log *slog.Logger, stdout io.Writer) (err error) {
	if cfg.Dev {
		dir, err := os.MkdirTemp("", "clusterd-dev-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.DataDir = dir
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory %s: %w (choose a writable --data-dir)", cfg.DataDir, err)
	}
	a := &Agent{cfg: cfg, timers: ProfileTimers(cfg.Profile), log: log, stdout: stdout, lag: &health.LoopLag{},
		obs: newObserved(), moves: newMoveLocks(), wake: make(chan struct{}, 1), busy: map[resource.Address]busyAddr{}}
	a.live = newLeases(cfg.NodeID, lease.Timers{Renew: a.timers.Renew, Lease: a.timers.Lease, Margin: a.timers.Margin, Guard: a.timers.Guard}, log.With("component", "lease"))
	a.live.onGain = a.poke
	a.live.onDown = func(node string, silent time.Duration) {
		if a.store.IsLeader() {
			a.event(EventNodeRemoved, "", fmt.Sprintf("node %s is down: no lease renewal for %s (its addresses fail over once the voters release them)", node, silent.Round(time.Millisecond)), nil)
		}
	}

	// Before the fencing companion starts, so it inherits the policy.
	if held, err := schedule(cfg.RTPriority()); err != nil {
		log.Warn("scheduling priority not raised as configured; lease renewals may lapse on a busy machine", "err", err, "holds", held)
	} else {
		log.Info(held)
	}

	// 1. Kernel first: whatever a previous run left behind goes before anything else.
	if a.handle, err = netlink.NewHandle(); err != nil {
		return fmt.Errorf("open netlink: %w (clusterd needs CAP_NET_ADMIN; run as root)", err)
	}
	defer a.handle.Close()
	a.events = newEventLog(cfg.NodeID, log)
	a.nb = newNBIfaces(log.With("component", "netbios"), func(e netbios.Event) {
		a.event(e.ID, a.resourceAt(e.Addr), e.String(), nil)
	})
	a.nb.onChange = a.poke // name states show in status without waiting for a resync
	a.ann = newAnnouncers(announce.Config{BeforeSend: a.beforeAnnounce}, log.With("component", "announce"))
	a.mgr, err = resource.New(resource.Config{Handle: a.handle, DataDir: cfg.DataDir, Logger: log.With("component", "resource"), Announcer: a.ann,
		BeforeAdd: a.checkLease, Lifetime: cfg.Lifetime()})
	if err != nil {
		return err
	}
	if stale := a.mgr.Recorded(); len(stale) > 0 {
		log.Warn("removing cluster addresses a previous run left behind", "count", len(stale))
	}
	if _, err := a.mgr.Cleanup(ctx); err != nil {
		return fmt.Errorf("remove stale cluster addresses: %w", err)
	}

	// The fencing companion: from here on, if this process dies, its addresses go.
	fence, err := startFence(cfg.DataDir, fenceLead(a.timers), log.With("component", "fence"))
	if err != nil {
		return err
	}
	defer fence.stop()
	a.live.fence = fence.set
	a.fence = fence

	// 2. Raft.
	if a.tls, err = loadTLS(cfg); err != nil {
		return err
	}
	if a.tls == nil {
		log.Warn("running without TLS: raft and the API are plain TCP/HTTP, protected by the cluster token only (give --tls-ca, --tls-cert, --tls-key to encrypt and authenticate nodes)")
	}
	if err := a.openStore(); err != nil {
		return err
	}
	if a.token, err = loadToken(cfg, cfg.Bootstrap && !a.store.HasExistingState() || a.store.HasExistingState()); err != nil {
		a.store.Close()
		return err
	}
	if cfg.Dev {
		if path, err := writeDevToken(a.token); err == nil {
			fmt.Fprintf(stdout, "clusterd agent dev token: %s (written to %s, where the CLI finds it)\n", a.token, path)
		}
	}
	defer func() {
		if cerr := a.store.Close(); cerr != nil {
			log.Error("close raft store", "err", cerr)
		}
	}()

	a.met = newMetrics(a)

	// 3. The API listener, before joining, so the cluster can reach us.
	ln, err := net.Listen("tcp", cfg.APIAddr)
	if err != nil {
		return fmt.Errorf("listen for the API on %s: %w (another agent running? choose another --api-addr)", cfg.APIAddr, err)
	}
	srv := &http.Server{Handler: a.handler(), ReadHeaderTimeout: 5 * time.Second}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 8)
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	goRun("api", func(ctx context.Context) error {
		go func() { <-ctx.Done(); srv.Close() }()
		if a.tls != nil {
			ln = tls.NewListener(ln, a.tls.apiConfig())
		}
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	goRun("raft", a.store.Run)
	goRun("announce", a.ann.Run)
	goRun("netbios", a.nb.Run)

	if err := a.enter(ctx); err != nil {
		cancel()
		wg.Wait()
		return err
	}
	goRun("lease", func(ctx context.Context) error { return a.live.Run(ctx, a) })
	goRun("placement", a.runPlacement)
	goRun("reconcile", a.runReconcile)
	goRun("watch", a.watchKernel)
	goRun("self-probe", a.runSelfProbe)
	goRun("health", a.runChecks)

	schedule(cfg.RTPriority()) // threads started since (they inherit it; this catches any started during the first pass)
	fmt.Fprintf(stdout, "clusterd agent %s ready: API %s%s (node %s, data %s)\n", cfg.NodeID, a.scheme(), cfg.APIAddr, cfg.NodeID, cfg.DataDir)
	log.Info("agent ready", "node", cfg.NodeID, "api", a.scheme()+cfg.APIAddr, "raft", cfg.RaftAddr, "profile", cfg.Profile)

	select {
	case <-ctx.Done():
	case err = <-errc:
		log.Error("agent component failed; stopping", "err", err)
	}
	// Shutdown order: stop the loops (no more adds), release every address this
	// node holds, then close raft (deferred above).
	cancel()
	wg.Wait()
	a.hookRuns.wg.Wait()
	rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer rcancel()
	if _, rerr := a.mgr.Apply(rctx, nil); rerr != nil {
		log.Error("release addresses at stop", "err", rerr)
		err = errors.Join(err, rerr)
	}
	log.Info("agent stopped; addresses released", "node", cfg.NodeID)
	return err
}

func (a *Agent) openStore() error {
	t := a.timers
	st, err := consensus.Open(consensus.Config{
		NodeID: a.cfg.NodeID, DataDir: a.cfg.DataDir, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr,
		Voter:            a.cfg.IsVoter(),
		HeartbeatTimeout: t.Heartbeat, ElectionTimeout: t.Election,
		LeaderLeaseTimeout: t.LeaderLease, CommitTimeout: t.Commit,
		Logger: a.log.With("component", "raft"),
		TLS:    tlsRaft(a.tls),
	})
	if err != nil {
		return err
	}
	a.store = st
	return nil
}

// enter bootstraps, joins or rejoins, then makes sure this node is in the node list.
func (a *Agent) enter(ctx context.Context) error {
	existing := a.store.HasExistingState()
	switch {
	case existing && a.cfg.Join != "" && a.aloneInStoredConfig() && !consensus.Recovered(a.cfg.DataDir):
		return fmt.Errorf("data directory %s holds a separate one-node cluster (this node was bootstrapped on its own), so it cannot join %s; to join, stop it, run `clusterd release --data-dir %s`, empty the directory, and start again with --join", a.cfg.DataDir, a.cfg.Join, a.cfg.DataDir)
	case existing && (a.cfg.Bootstrap || a.cfg.Join != "") && !a.cfg.Dev:
		a.log.Info("data directory holds raft state; rejoining from it (bootstrap/join ignored)", "data", a.cfg.DataDir)
	case existing:
		a.log.Info("rejoining from stored raft state", "data", a.cfg.DataDir)
	case a.cfg.Bootstrap:
		if err := a.store.Bootstrap(); err != nil {
			return fmt.Errorf("bootstrap: %w", err)
		}
	case a.cfg.Join != "":
		if err := a.join(ctx); err != nil {
			return err
		}
	default:
		return fmt.Errorf("data directory %s holds no cluster state and neither --bootstrap nor --join was given (start the first node with --bootstrap, the others with --join URL)", a.cfg.DataDir)
	}
	return a.registerSelf(ctx)
}

// aloneInStoredConfig reports whether the stored raft configuration is this node
// alone: a node bootstrapped by itself, as opposed to a member restarting.
func (a *Agent) aloneInStoredConfig() bool {
	servers, err := a.store.Servers()
	return err == nil && len(servers) == 1 && servers[0].ID == a.cfg.NodeID
}

// registerSelf waits until this node is in the replicated node list: the leader
// records itself (consensus.Store.Run) and the nodes that join through it.
func (a *Agent) registerSelf(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, _ := a.store.State()
		if _, ok := st.Nodes[a.cfg.NodeID]; ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("this node is not in the cluster's node list after 30 s (no leader? check that a majority of voters runs)")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (a *Agent) selfNode(prev consensus.Node) consensus.Node {
	return consensus.Node{ID: a.cfg.NodeID, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr,
		Voter: a.cfg.IsVoter(), Draining: prev.Draining, Labels: prev.Labels}
}

// join asks an existing node (forwarded to the leader) to add this one, retrying
// while the cluster is still starting.
func (a *Agent) join(ctx context.Context) error {
	c := api.NewClient(a.cfg.Join)
	c.Token = a.token
	c.HTTP = &http.Client{Timeout: 2 * time.Second, Transport: a.baseTransport()}
	req := api.JoinRequest{ID: a.cfg.NodeID, RaftAddr: a.cfg.RaftAddr, APIAddr: a.cfg.APIAddr, Voter: a.cfg.IsVoter()}
	attempts := int(a.cfg.JoinTimeout() / time.Second)
	for i := 1; ; i++ {
		_, err := c.Join(ctx, req)
		if err == nil {
			a.log.Info("joined the cluster", "via", a.cfg.Join)
			return nil
		}
		if errors.Is(err, api.ErrConflict) || errors.Is(err, api.ErrInvalid) || errors.Is(err, api.ErrForbidden) {
			return fmt.Errorf("join via %s refused: %w", a.cfg.Join, err)
		}
		if i >= attempts {
			return fmt.Errorf("join via %s: no answer after %d attempts over %s (%v); check the URL, that the node runs, and that this node reaches it (or raise join_timeout)", a.cfg.Join, attempts, a.cfg.JoinTimeout(), err)
		}
		a.log.Info("waiting for the cluster to accept the join", "via", a.cfg.Join, "attempt", i, "of", attempts, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// poke asks the reconciler for a pass without blocking.
func (a *Agent) poke() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}
