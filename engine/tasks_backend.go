package engine

import (
	"context"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/sdk/abi"
)

// taskBackend is what the task pipeline (engine/tasks) reaches of the rest of the node: the
// registry's functions, the end of a call's scope (objects, actors, tensors), the cluster's view
// for placement, and the node-to-node protocol to run a task elsewhere.
type taskBackend struct{ e *Engine }

func (b taskBackend) Function(ctx context.Context, module, function string) (tasks.Fn, error) {
	return b.e.Modules().function(ctx, module, function, abi.KindTask)
}

func (b taskBackend) EndScope(sc *tasks.Scope, out []byte, holder *objects.Object, keep bool) {
	b.e.endScope(sc, out, holder, keep)
}

func (b taskBackend) ResetScope(sc *tasks.Scope) {
	b.e.objects.ReleaseAll(sc.Owned)
	b.e.actors.KillAll(sc.Actors)
	sc.Owned, sc.Actors = nil, nil
}

func (b taskBackend) Peers() bool { return b.e.cluster.Peers() }

func (b taskBackend) Place(d scheduler.Resources, exclude map[string]bool) string {
	return b.e.cluster.Place(d, exclude)
}

func (b taskBackend) PlaceOrQueue(d scheduler.Resources, exclude map[string]bool) string {
	return b.e.cluster.PlaceOrQueue(d, exclude)
}

func (b taskBackend) Beat() time.Duration {
	beat, _ := b.e.cfg.Cluster.Intervals()
	return beat
}

func (b taskBackend) RunOn(ctx context.Context, node string, t *tasks.Placed) (*objects.Location, error) {
	return b.e.remote.RunOn(ctx, node, t)
}
