package actors

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/peer"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Deps is what a Manager is built from: the node's lifetime, its parts, and the few things of
// the node the actors reach through functions.
type Deps struct {
	// Ctx ends when the node closes: actors stop and their goroutines, counted in WG, return.
	Ctx context.Context
	WG  *sync.WaitGroup
	// Log receives the warnings; nil is slog.Default().
	Log *slog.Logger
	// Runtime runs the actors' instances; Objects holds their results and handles; Pool is the
	// node's resources, which an actor holds while it lives here.
	Runtime *host.Runtime
	Objects *objects.Store
	Pool    *tasks.Pool
	// Cluster is the node's membership: its id, run, raft (the actor and name records), the
	// placement view and liveness. Peer is its client of the other nodes' peer routes.
	Cluster *cluster.Node
	Peer    *peer.Client
	// Function resolves module's function name of kind (abi.KindActor for an actor type).
	Function func(ctx context.Context, module, name string, kind abi.FuncKind) (tasks.Fn, error)
	// Digest resolves a module reference (digest, name@version or name) to its digest.
	Digest func(module string) (string, error)
	// ShipRefs says where each of the objects of job (this node's handles) a call forwarded to
	// another node reads lives, waiting for each to be ready. Only calls of an actor placed on
	// another node use it.
	ShipRefs func(ctx context.Context, job string, refs []int64) ([]wire.RemoteRef, error)
	// EndScope ends what an ended actor's scope holds: its objects, the actors it owns, its
	// tensors.
	EndScope func(sc *tasks.Scope)
	// Every runs f every d until the node closes (the node's loop, counted in WG).
	Every func(d time.Duration, f func())
	// JobActors caps one job's actors on this node: those that run here and those this node
	// owns that run elsewhere (a handle through which a named actor of another node is
	// called does not count). Past it, creation is refused with limit_exceeded (job_actors).
	// 0 is DefaultJobActors; a negative value sets no cap.
	JobActors int
}

// DefaultJobActors is the cap on one job's actors on a node unless Deps.JobActors says
// otherwise: as many as Ray's benchmark starts, each holding a WebAssembly instance.
const DefaultJobActors = 10_000

// Manager is one node's actors: those running here (whether created here or placed here by
// their owner), the proxies of those this node placed on others, the handles of named actors
// other nodes own, and their records in the replicated state. It is safe for concurrent use.
type Manager struct {
	ctx      context.Context
	wg       *sync.WaitGroup
	log      *slog.Logger
	nodeID   string
	beat     time.Duration // the heartbeat interval: how often a placed actor checks its node
	runtime  *host.Runtime
	objects  *objects.Store
	pool     *tasks.Pool
	cluster  *cluster.Node
	node     *raftstore.Node
	peer     *peer.Client
	function func(ctx context.Context, module, name string, kind abi.FuncKind) (tasks.Fn, error)
	every    func(d time.Duration, f func())
	digest   func(module string) (string, error)
	shipRefs func(ctx context.Context, job string, refs []int64) ([]wire.RemoteRef, error)
	endScope func(sc *tasks.Scope)
	capJob   int // Deps.JobActors resolved; negative: no cap
	maxState int // MaxDurableState; tests lower it

	mu      sync.Mutex
	actors  map[int64]*actor
	perJob  map[string]int   // the actors counted against each job's cap
	named   map[string]int64 // "namespace/name" -> actor
	closing bool
	// ended remembers why recently ended actors ended (the oldest forgotten first).
	ended      map[int64]endedActor
	endedOrder []int64

	remote actorsRemote // placed actors and followed names (placed.go)
	ledger *ledger      // the actor and name records in the replicated state (ledger.go)
}

// New returns a node's Manager. d.Cluster must be open: the manager reads its node id and run.
func New(d Deps) *Manager {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	cfg := d.Cluster.Config()
	beat, _ := cfg.Intervals()
	m := &Manager{
		ctx: d.Ctx, wg: d.WG, log: d.Log, nodeID: cfg.NodeID, beat: beat, runtime: d.Runtime, objects: d.Objects, pool: d.Pool,
		cluster: d.Cluster, node: d.Cluster.Raft(), peer: d.Peer, function: d.Function, digest: d.Digest, shipRefs: d.ShipRefs,
		endScope: d.EndScope, every: d.Every, capJob: d.JobActors,
		actors: map[int64]*actor{}, named: map[string]int64{}, ended: map[int64]endedActor{}, perJob: map[string]int{},
	}
	m.maxState = MaxDurableState
	if m.capJob == 0 {
		m.capJob = DefaultJobActors
	}
	m.ledger = &ledger{ctx: d.Ctx, wg: d.WG, log: d.Log, nodeID: cfg.NodeID, cluster: d.Cluster, node: m.node, live: m.liveActor}
	return m
}

// Close refuses new actors from now on. The actors stop when Deps.Ctx ends; wait for Deps.WG.
func (m *Manager) Close() {
	m.mu.Lock()
	m.closing = true
	m.mu.Unlock()
}

// Count is the number of actors not yet ended on this node (proxies and followers included).
func (m *Manager) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.actors)
}

// InUse names a live actor that runs the module of digest, or returns "".
func (m *Manager) InUse(digest string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range m.actors {
		if a.hm.Digest == digest {
			return fmt.Sprintf("actor %d runs it", a.id)
		}
	}
	return ""
}

// KillJob kills the actors of job on this node.
func (m *Manager) KillJob(job string) {
	var ids []int64
	m.mu.Lock()
	for id, a := range m.actors {
		if a.job == job {
			ids = append(ids, id)
		}
	}
	m.mu.Unlock()
	m.KillAll(ids)
}

// Named returns the handle and job of the actor called name in namespace: the actor itself when
// it lives here, else a handle here through which the node that owns it is called.
func (m *Manager) Named(namespace, name string) (id int64, job string, err error) {
	m.mu.Lock()
	id, ok := m.named[namespace+"/"+name]
	var a *actor
	if ok {
		a = m.actors[id]
	}
	m.mu.Unlock()
	if a == nil {
		return m.remoteNamedActor(namespace, name) // elsewhere in the cluster, or nowhere
	}
	return id, a.job, nil
}

// quotaLocked refuses one more actor of job when the job holds its cap here. The caller holds
// m.mu.
func (m *Manager) quotaLocked(job string) error {
	if m.capJob < 0 || m.perJob[job] < m.capJob {
		return nil
	}
	return &abi.Error{Kind: abi.KindLimit, Limit: abi.QuotaJobActors, Message: fmt.Sprintf(
		"job %q has %d actors on node %s, its cap (job_actors %d): kill some, or raise the node's cap", job, m.perJob[job], m.nodeID, m.capJob)}
}

// counted says whether actor a counts against its job's cap: a follower is only a handle.
func counted(a *actor) bool { return a.pl == nil || !a.pl.follows }

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
