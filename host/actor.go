package host

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/lumenflow/lumen/sdk/abi"
)

// InstanceSpec describes a dedicated instance.
type InstanceSpec struct {
	Module  *Module
	Job     string
	Grants  Grants
	Limits  Limits // for every call on the instance; zero fields take Config.Defaults
	Context any    // handed to Services in CallInfo.Context
}

// Instance is a dedicated instance of a module, for an actor: its state (globals and memory)
// lives from one call to the next and it is never pooled. Calls on it run one at a time, in the
// order they get the instance's lock; a call waits for the one before it while its ctx allows.
// After a trap, a limit or a deadline the instance is dead: later calls fail with KindSystem and
// Err says why. Close it when done; the Runtime's Close closes it too.
type Instance struct {
	r    *Runtime
	m    *Module
	job  string
	lim  Limits
	ctxv any
	lock chan struct{} // a token while a call or Close holds the instance

	in     *instance
	closed bool                      // guarded by lock
	err    atomic.Pointer[abi.Error] // why the instance died
}

// NewInstance instantiates spec.Module for the calls of one actor. Instantiation runs the guest's
// initialization and takes a concurrency slot while it does. Errors are as for Call.
func (r *Runtime) NewInstance(ctx context.Context, spec InstanceSpec) (*Instance, error) {
	m := spec.Module
	if m == nil || m.r != r {
		return nil, newErr(abi.KindBadInput, "instance: the module was not compiled by this runtime")
	}
	lim, caps, _, aerr := r.prepare(m, spec.Job, &spec.Grants, spec.Limits)
	if aerr != nil {
		return nil, aerr
	}
	if _, err := r.acquire(ctx); err != nil {
		return nil, waitErr(err)
	}
	defer r.release()
	if _, err := r.begin(poolKey{}, false); err != nil {
		return nil, err
	}
	grants := spec.Grants
	is := &instanceSpec{m: m, caps: caps, grants: &grants, lim: lim, slot: slotNone,
		info: CallInfo{Job: spec.Job, Module: m.Digest, Function: "_initialize", Context: spec.Context}}
	now := time.Now()
	in, _, aerr := r.instantiate(ctx, now, now.Add(lim.Timeout), is)
	if aerr != nil {
		r.end(ctx, nil)
		return nil, aerr
	}
	i := &Instance{r: r, m: m, job: spec.Job, lim: lim, ctxv: spec.Context, lock: make(chan struct{}, 1), in: in}
	r.mu.Lock()
	closed := r.closed
	if !closed {
		r.dedicated[i] = struct{}{}
	}
	r.mu.Unlock()
	r.end(ctx, nil)
	if closed {
		in.close(ctx)
		return nil, closedErr()
	}
	return i, nil
}

// Module returns the instance's module.
func (i *Instance) Module() *Module { return i.m }

// Err returns why the instance died, or nil while it is alive. It is safe for concurrent use.
func (i *Instance) Err() error {
	if e := i.err.Load(); e != nil {
		return e
	}
	return nil
}

// Call runs function on the instance. It is safe for concurrent use: calls are serialized.
// Errors are as for Runtime.Call.
func (i *Instance) Call(ctx context.Context, function string, input []byte) (*Result, error) {
	start := time.Now()
	fn, ok := i.m.fn[function]
	if !ok {
		return nil, newErr(abi.KindNotFound, "module %s has no function %q", i.m.Digest, function)
	}
	select {
	case i.lock <- struct{}{}:
	case <-ctx.Done():
		return nil, waitErr(ctx.Err())
	}
	defer func() { <-i.lock }()
	if i.closed {
		return nil, closedErr()
	}
	if e := i.err.Load(); e != nil {
		return nil, newErr(abi.KindSystem, "the instance is dead (%v); create a new one", e)
	}
	if _, err := i.r.acquire(ctx); err != nil {
		return nil, waitErr(err)
	}
	if _, err := i.r.begin(poolKey{}, false); err != nil {
		i.r.release()
		return nil, err
	}
	i.r.markBusy(i.in)
	info := CallInfo{Job: i.job, Module: i.m.Digest, Function: function, Context: i.ctxv}
	now := time.Now()
	res, aerr, slot := i.in.invoke(ctx, now, now.Add(i.lim.Timeout), fn, input, info, i.lim, slotHeld)
	i.r.end(ctx, i.in)
	if slot == slotHeld {
		i.r.release()
	}
	res.Duration = time.Since(start)
	if i.in.dead {
		why := aerr
		if why == nil {
			why = newErr(abi.KindCancelled, "the instance was stopped as its call returned")
		}
		i.err.Store(why)
		i.in.close(ctx)
	}
	if aerr != nil {
		return res, aerr
	}
	return res, nil
}

// Close releases the instance, waiting for a running call to end while ctx allows.
func (i *Instance) Close(ctx context.Context) error {
	select {
	case i.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-i.lock }()
	i.r.mu.Lock()
	delete(i.r.dedicated, i)
	i.r.mu.Unlock()
	i.closeLocked(ctx)
	return nil
}

func (i *Instance) closeLocked(ctx context.Context) {
	if !i.closed {
		i.closed = true
		i.in.close(ctx)
	}
}

// closeNow is the Runtime's Close of an instance; no call is running by then.
func (i *Instance) closeNow(ctx context.Context) {
	i.lock <- struct{}{}
	defer func() { <-i.lock }()
	i.closeLocked(ctx)
}
