package engine

import (
	"context"

	"github.com/lumenflow/lumen/engine/actors"
	"github.com/lumenflow/lumen/engine/tasks"
)

// ActorRecord is what the replicated state says of one actor (actors.Record).
type ActorRecord = actors.Record

// Actor states in the records.
const (
	ActorAlive      = actors.Alive
	ActorRestarting = actors.Restarting
	ActorDead       = actors.Dead
)

// openActors wires the node's actors (package engine/actors) to its runtime, objects, resources,
// cluster and registry. It runs in openCluster, before the cluster starts declaring nodes dead;
// the registry opens later, and is read only once actors are created.
func (e *Engine) openActors() *actors.Manager {
	return actors.New(actors.Deps{Ctx: e.ctx, WG: &e.wg, Log: e.log, Runtime: e.rt, Objects: e.objects, Pool: e.adm,
		Cluster: e.cluster, Peer: e.cluster.Peer(), Function: e.Modules().function,
		Digest: func(module string) (string, error) {
			m, err := e.reg.Resolve(module)
			if err != nil {
				return "", err
			}
			return m.Digest, nil
		},
		ShipRefs:  e.remote.ShipRefs,
		EndScope:  func(sc *tasks.Scope) { e.endScope(sc, nil, nil, false) },
		Every:     e.every,
		JobActors: e.cfg.JobActors,
	})
}

// List lists the actor records of the cluster, of job when it is not empty, ordered by owner
// and handle. The read is linearizable; a record follows its actor's change by a moment.
func (a Actors) List(ctx context.Context, job string) ([]ActorRecord, error) {
	return a.e.actors.Records(ctx, job)
}
