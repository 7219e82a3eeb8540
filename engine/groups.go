package engine

import (
	"context"
	"fmt"

	"github.com/lumenflow/lumen/engine/cluster"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Placement groups are package engine/cluster's (Groups); a task submitted into a bundle runs
// through the task pipeline like any other.

// Placement groups' types, as package engine/cluster defines them.
type (
	PlacementGroupSpec = cluster.GroupSpec
	PlacementGroup     = cluster.Group
)

// ErrGroupNotFound is returned for an unknown placement group.
var ErrGroupNotFound = cluster.ErrGroupNotFound

// Groups is the cluster's placement groups: create, read, remove.
func (e *Engine) Groups() *cluster.Groups { return e.groups }

// InGroup submits a task to bundle i of placement group id: on this node when the bundle is
// here, else on the bundle's node (this node owns the result either way).
//
// remote, on a task another node placed here, says where the objects it reads live (see
// Tasks.here); a client outside the cluster passes nil.
func (t Tasks) InGroup(ctx context.Context, job string, req *abi.TaskRequest, grants host.Grants, id string, i int, remote []wire.RemoteRef) (int64, error) {
	job = wire.JobOr(job)
	pg, err := t.e.groups.Get(ctx, id)
	if err != nil {
		return 0, &abi.Error{Kind: abi.KindNotFound, Message: err.Error()}
	}
	if i < 0 || i >= len(pg.Nodes) {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("placement group %s has bundles 0..%d, not %d", id, len(pg.Nodes)-1, i)}
	}
	if pg.Nodes[i] != t.e.nodeID() {
		// The bundle is on another node: the task runs there, in it (engine/tasks).
		spec := specOf(tasks.FromGroup, tasks.Here, job, req.Module, req, grants, host.Limits{})
		spec.Node, spec.Group, spec.Bundle = pg.Nodes[i], id, i
		return t.e.tasks.Submit(ctx, spec)
	}
	pool, err := t.e.groups.Pool(id, i)
	if err != nil {
		return 0, err
	}
	local, made := req, []int64(nil)
	if len(remote) > 0 {
		if local, made, err = t.e.remote.TakeRefs(job, req, remote); err != nil {
			return 0, err
		}
	}
	spec := specOf(tasks.FromGroup, tasks.Here, job, local.Module, local, grants, host.Limits{})
	spec.Pool = pool
	h, err := t.e.tasks.Submit(ctx, spec)
	t.e.objects.ReleaseAll(made) // the task holds them now, or failed to start
	return h, err
}
