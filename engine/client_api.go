package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Objects, Tasks and Actors serve clients outside WASM (the REST API, the CLI, Go programs) with
// the same objects, tasks and actors guests reach through host functions. Handles are scoped to a
// job; an empty job is "default".

// Objects is the node's object store as clients outside WASM see it.
type Objects struct{ e *Engine }

// Tasks starts and cancels tasks for clients outside WASM.
type Tasks struct{ e *Engine }

// Actors creates, calls, finds, lists and stops actors for clients outside WASM.
type Actors struct{ e *Engine }

// Objects is the node's object store, for clients outside WASM.
func (e *Engine) Objects() Objects { return Objects{e} }

// Tasks starts tasks for clients outside WASM.
func (e *Engine) Tasks() Tasks { return Tasks{e} }

// Actors is the node's actors, for clients outside WASM.
func (e *Engine) Actors() Actors { return Actors{e} }

// Put stores data as an object of job and returns its handle.
func (o Objects) Put(job string, data []byte) (int64, error) {
	return o.e.objects.Put(wire.JobOr(job), data)
}

// Get waits for object h of job (timeout < 0: until ctx ends) and returns its bytes; a failed
// task's object gives its *abi.Error.
func (o Objects) Get(ctx context.Context, job string, h int64, timeout time.Duration) ([]byte, error) {
	return o.e.objects.Get(ctx, wire.JobOr(job), h, timeout)
}

// Meta waits for object h of job like Get and describes it (its size, checksum and refs).
func (o Objects) Meta(ctx context.Context, job string, h int64, timeout time.Duration) (wire.ObjectMeta, error) {
	return o.e.remote.ObjectMeta(ctx, job, h, timeout)
}

// Release drops the caller's reference to object h of job; it is freed once nothing else holds
// it.
func (o Objects) Release(job string, h int64) error { return o.e.objects.Release(wire.JobOr(job), h) }

// Wait blocks until req.NumReturns of req.Handles are ready or its timeout passes.
func (o Objects) Wait(ctx context.Context, job string, req *abi.WaitRequest) (*abi.WaitResult, error) {
	return o.e.objects.Wait(ctx, wire.JobOr(job), req)
}

// Submit starts a task of job with grants and returns the handle of its result. req.Module is
// required. In a cluster, a task that does not fit on this node now runs on a node where it does
// (engine/tasks); its result is still this node's object h.
func (t Tasks) Submit(ctx context.Context, job string, req *abi.TaskRequest, grants host.Grants) (int64, error) {
	if req.Module == "" {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: "a task submitted from outside a module must name its module"}
	}
	return t.e.tasks.Submit(ctx, specOf(tasks.FromAPI, tasks.Anywhere, wire.JobOr(job), req.Module, req, grants, host.Limits{}))
}

// here is Submit for a task another node placed on this one: it runs here, once this node
// has applied the state up to index (the placing node's), so the task's module is known here.
// remote says where the objects the task reads (req.Refs, the placing node's handles) live; the
// task fetches them from there as it reads them.
func (t Tasks) here(ctx context.Context, job string, req *abi.TaskRequest, grants host.Grants, index uint64, remote []wire.RemoteRef) (int64, error) {
	if req.Module == "" {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: "a task submitted from outside a module must name its module"}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := t.e.node.KV().WaitApplied(wctx, index); err != nil {
		return 0, &abi.Error{Kind: abi.KindSystem, Message: fmt.Sprintf("this node is behind the one that placed the task: %v", err)}
	}
	job = wire.JobOr(job)
	local, made := req, []int64(nil)
	if len(req.Refs) > 0 || len(remote) > 0 {
		var err error
		if local, made, err = t.e.remote.TakeRefs(job, req, remote); err != nil {
			return 0, err
		}
	}
	h, err := t.e.tasks.Submit(ctx, specOf(tasks.FromPeer, tasks.Here, job, local.Module, local, grants, host.Limits{}))
	t.e.objects.ReleaseAll(made) // the task holds them now, or failed to start
	return h, err
}

// Cancel cancels the task whose result is object h of job.
func (t Tasks) Cancel(job string, h int64) error {
	o, err := t.e.objects.Lookup(wire.JobOr(job), h)
	if err != nil {
		return err
	}
	if o.Cancel != nil {
		o.Cancel()
	}
	return nil
}

// Create creates an actor of job with grants and returns its handle. req.Module is required.
func (a Actors) Create(ctx context.Context, job string, req *abi.ActorCreateRequest, grants host.Grants) (int64, error) {
	if req.Module == "" {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: "an actor created from outside a module must name its module"}
	}
	return a.e.actors.Create(ctx, wire.JobOr(job), req.Module, req, &callContext{Grants: grants})
}

// Call queues a call of method on actor id of job and returns the handle of its result.
func (a Actors) Call(job string, id int64, method string, input []byte) (int64, error) {
	return a.e.actors.Call(wire.JobOr(job), id, method, input)
}

// Kill stops actor id of job.
func (a Actors) Kill(job string, id int64) error { return a.e.actors.Kill(wire.JobOr(job), id) }

// Named returns the handle and job of the actor called name in namespace.
func (a Actors) Named(namespace, name string) (id int64, job string, err error) {
	return a.e.actors.Named(namespace, name)
}

// Load reports what job holds on this node against its quota: its tasks in flight and its calls
// waiting on other work.
func (t Tasks) Load(job string) tasks.JobLoad { return t.e.tasks.Load(wire.JobOr(job)) }
