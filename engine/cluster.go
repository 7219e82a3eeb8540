package engine

import (
	"context"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/remote"
	"github.com/lumenflow/lumen/engine/scheduler"
)

// ClusterConfig says how a node takes part in the replicated control plane (cluster.Config).
// The zero value runs a single node.
type ClusterConfig = cluster.Config

// Files of the data directory that the cluster shares (see package engine/cluster).
const (
	JoinTokenFile  = cluster.JoinTokenFile
	AdminTokenFile = cluster.AdminTokenFile
	ReadTokenFile  = cluster.ReadTokenFile
)

// MaxKVValueLen caps a value of the control plane's key-value store.
const MaxKVValueLen = cluster.MaxKVValueLen

// LoadOrCreateSecret reads a secret file, or creates it (cluster.LoadOrCreateSecret).
func LoadOrCreateSecret(path string) (string, error) { return cluster.LoadOrCreateSecret(path) }

// openCluster starts the node's raft (package engine/cluster) and the work that follows the
// cluster: heartbeats, placement groups, the names a previous run held. It runs before the
// registry opens, which reads through it.
func (e *Engine) openCluster(ctx context.Context) error {
	c, err := cluster.Open(ctx, cluster.Deps{Config: e.cfg.Cluster, DataDir: e.cfg.DataDir, Log: e.log, Ctx: e.ctx, WG: &e.wg,
		Total: e.cfg.Resources, Available: e.adm.Available, CanHold: func(d scheduler.Resources) bool { return e.adm.Check(d) == nil },
		Counters: e.counters, EveryBeat: func() { e.remote.DropOrphans() }, OnDead: e.nodeDead})
	if err != nil {
		return err
	}
	e.cluster, e.node, e.cfg.Cluster = c, c.Raft(), c.Config()
	e.regVersion = c.Registry().Version
	e.remote = remote.New(remote.Deps{Ctx: e.ctx, WG: &e.wg, Log: e.log, NodeID: e.nodeID(), APIURL: e.cfg.Cluster.APIURL,
		Objects: e.objects, Cluster: c, Peer: c.Peer(), Tasks: e.tasks, CallBorrowing: func(job string, id int64, method string, input []byte, borrowed []int64) (int64, error) {
			return e.actors.CallBorrowing(job, id, method, input, borrowed)
		}})
	e.actors = e.openActors()
	c.Start()
	e.groups = cluster.NewGroups(c, e.adm, e.cfg.Resources)
	e.groups.Start(e.every)
	// Actors do not survive a restart: drop the names this node held before it.
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		e.actors.DropNames(e.ctx, e.nodeID())
	}()
	return nil
}

// counters reads the task and object counters for the heartbeat and the status.
func (e *Engine) counters() cluster.Counters {
	tc := e.tasks.Counts()
	return cluster.Counters{TasksRun: tc.Ran, PlacedOut: tc.PlacedOut, Retried: tc.Retried,
		Rebuilt: e.remote.Rebuilt(), PulledBytes: e.remote.PulledBytes()}
}

// nodeDead runs on the leader once the cluster has declared another node dead: this node adopts
// its workflows and frees the actor names it held.
func (e *Engine) nodeDead(id string) {
	e.workflows.Adopt(id)
	e.actors.DropNames(e.ctx, id)
}

// nodeID is this node's id in the cluster ("local" for a single node).
func (e *Engine) nodeID() string { return e.cfg.Cluster.NodeID }

// Cluster is the node's membership in the control plane (package engine/cluster): status, the
// view of live nodes, removal of a node, the internal key-value store.
func (e *Engine) Cluster() *cluster.Node { return e.cluster }
