package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tensors"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultMaxRetries is how often a task is retried after a system failure when its request does
// not say.
const DefaultMaxRetries = 3

// callContext travels with every call the engine makes (host.CallRequest.Context), so that work
// a guest starts inherits its job's grants and limits.
type callContext struct {
	grants host.Grants
	limits host.Limits
	// held is what the call holds of the node's resources; it gives them back while it blocks
	// on other work, so a node full of tasks waiting on their children cannot deadlock. Only the
	// goroutine running the call touches it.
	held scheduler.Resources
	// owned are the objects the call made (puts, the results of tasks and actor calls it
	// started); borrowed are the objects passed to it, which it holds while it runs. endScope
	// gives them up.
	owned, borrowed []int64
	// actors are the actors the call created without Detached: they end with it.
	actors []int64
	// tensors are the tensors and optimisers the call made (package engine/tensors); they end
	// with it.
	tensors tensors.Scope
	// pool is the admission the call draws its resources from: a placement group's bundle, or
	// nil for the node's.
	pool *admission
}

// poolOf returns the admission a call draws from.
func (e *Engine) poolOf(cc *callContext) *admission {
	if cc != nil && cc.pool != nil {
		return cc.pool
	}
	return e.adm
}

// endScope ends a call's hold on its objects: those its output refers to pass to holder (the
// call's result object) or, with keep and no holder, stay with the caller; the rest, and what it
// borrowed, are released.
func (e *Engine) endScope(cc *callContext, out []byte, holder *objects.Object, keep bool) {
	kept, dropped := objects.RefsIn(out, cc.owned)
	switch {
	case holder != nil:
		e.objects.Adopt(holder, kept)
	case !keep:
		dropped = append(dropped, kept...)
	}
	e.objects.ReleaseAll(dropped)
	e.objects.ReleaseAll(cc.borrowed)
	e.killActors(cc.actors)
	e.tensors.Free(&cc.tensors)
	cc.owned, cc.borrowed, cc.actors = nil, nil, nil
}

// demand is what a call needs: its request's resources, else its module's hints, else one cpu.
func demand(req, hints abi.Resources) scheduler.Resources {
	if d := scheduler.FromABI(req); !d.IsZero() {
		return d
	}
	if d := scheduler.FromABI(hints); !d.IsZero() {
		return d
	}
	return scheduler.Resources{scheduler.CPU: 1}
}

// blocking runs wait with the call's resources given back, and takes them again after. If the
// engine closes meanwhile, the call no longer holds them.
func (e *Engine) blocking(c *host.CallInfo, wait func() error) error {
	cc := callCtx(c)
	held := cc.held
	if held.IsZero() {
		return wait()
	}
	e.poolOf(cc).release(held)
	cc.held = nil
	err := wait()
	if aerr := e.poolOf(cc).acquire(e.ctx, held); aerr == nil {
		cc.held = held
	}
	return err
}

// services is the engine behind the guests' object, task and actor host functions.
type services struct{ e *Engine }

var _ host.Services = services{}

func callCtx(c *host.CallInfo) *callContext {
	if cc, ok := c.Context.(*callContext); ok {
		return cc
	}
	return &callContext{}
}

func (s services) ObjectPut(_ context.Context, c *host.CallInfo, data []byte) (int64, error) {
	h, err := s.e.objects.Put(c.Job, data)
	if err == nil {
		cc := callCtx(c)
		cc.owned = append(cc.owned, h)
	}
	return h, err
}

func (s services) ObjectGet(ctx context.Context, c *host.CallInfo, h int64, timeout time.Duration) ([]byte, error) {
	var out []byte
	err := s.e.blocking(c, func() (err error) {
		out, err = s.e.objects.Get(ctx, c.Job, h, timeout)
		return err
	})
	return out, err
}

func (s services) ObjectRelease(_ context.Context, c *host.CallInfo, h int64) error {
	return s.e.objects.Release(c.Job, h)
}

func (s services) TaskSubmit(ctx context.Context, c *host.CallInfo, req *abi.TaskRequest) (int64, error) {
	module := req.Module
	if module == "" {
		module = c.Module
	}
	cc := callCtx(c)
	// Outside a placement group and with no limits but a timeout, a task that does not fit on
	// this node now may run on another (placement.go), as one submitted from outside does.
	if cc.pool == nil && cc.limits == (host.Limits{Timeout: cc.limits.Timeout}) {
		r := *req
		r.Module = module
		if r.TimeoutMs <= 0 && cc.limits.Timeout > 0 {
			r.TimeoutMs = cc.limits.Timeout.Milliseconds()
		}
		if h, placed, err := s.e.submitPlaced(ctx, c.Job, &r, cc.grants); placed {
			if err == nil {
				cc.owned = append(cc.owned, h)
			}
			return h, err
		}
	}
	h, err := s.e.submitRequest(ctx, c.Job, module, req, cc.grants, cc.limits)
	if err != nil {
		return 0, err
	}
	cc.owned = append(cc.owned, h)
	return h, nil
}

// submitRequest submits a task request of job running module, under grants and the limits base
// (with the request's timeout), holding the objects it passes until it ends.
func (e *Engine) submitRequest(ctx context.Context, job, module string, req *abi.TaskRequest, grants host.Grants, base host.Limits) (int64, error) {
	return e.submitIn(ctx, job, module, req, grants, base, nil)
}

// submitIn is submitRequest drawing on pool (a placement group's bundle; nil: the node's).
func (e *Engine) submitIn(ctx context.Context, job, module string, req *abi.TaskRequest, grants host.Grants, base host.Limits, pool *admission) (int64, error) {
	input := []byte(req.Args)
	if req.ArgsBytes != nil {
		input = req.ArgsBytes
	}
	if err := e.objects.Retain(job, req.Refs); err != nil {
		return 0, err
	}
	h, err := e.submit(ctx, task{
		job: job, module: module, function: req.Function, input: input, resources: req.Resources,
		cc:         &callContext{grants: grants, limits: withTimeout(base, req.TimeoutMs), borrowed: req.Refs, pool: pool},
		maxRetries: retriesOr(req.MaxRetries), retryGuest: req.RetryGuestErrors,
	})
	if err != nil {
		e.objects.ReleaseAll(req.Refs)
		return 0, err
	}
	return h, nil
}

// withTimeout returns lim with its timeout set to ms milliseconds when ms is positive.
func withTimeout(lim host.Limits, ms int64) host.Limits {
	if ms > 0 {
		lim.Timeout = time.Duration(ms) * time.Millisecond
	}
	return lim
}

// retriesOr returns *n, or DefaultMaxRetries when n is nil.
func retriesOr(n *int) int {
	if n == nil {
		return DefaultMaxRetries
	}
	return *n
}

func (s services) TaskCancel(_ context.Context, c *host.CallInfo, h int64) error {
	o, err := s.e.objects.Lookup(c.Job, h)
	if err != nil {
		return err
	}
	if o.Cancel != nil {
		o.Cancel()
	}
	return nil
}

func (s services) Wait(ctx context.Context, c *host.CallInfo, req *abi.WaitRequest) (*abi.WaitResult, error) {
	var out *abi.WaitResult
	err := s.e.blocking(c, func() (err error) {
		out, err = s.e.objects.Wait(ctx, c.Job, req)
		return err
	})
	return out, err
}

func (s services) ActorCreate(ctx context.Context, c *host.CallInfo, req *abi.ActorCreateRequest) (int64, error) {
	module := req.Module
	if module == "" {
		module = c.Module
	}
	cc := callCtx(c)
	h, err := s.e.createActor(ctx, c.Job, module, req, cc)
	if err == nil && !req.Detached {
		cc.actors = append(cc.actors, h)
	}
	return h, err
}

func (s services) ActorCall(_ context.Context, c *host.CallInfo, req *abi.ActorCallRequest) (int64, error) {
	input := []byte(req.Args)
	if req.ArgsBytes != nil {
		input = req.ArgsBytes
	}
	if err := s.e.objects.Retain(c.Job, req.Refs); err != nil {
		return 0, err
	}
	h, err := s.e.callActorBorrowing(c.Job, req.Actor, req.Method, input, req.Refs)
	if err != nil {
		s.e.objects.ReleaseAll(req.Refs)
		return 0, err
	}
	cc := callCtx(c)
	cc.owned = append(cc.owned, h)
	return h, nil
}

func (s services) ActorKill(_ context.Context, c *host.CallInfo, h int64) error {
	return s.e.killActor(c.Job, h)
}

// task is one task to run.
type task struct {
	job, module, function string
	input                 []byte
	resources             abi.Resources
	cc                    *callContext
	maxRetries            int
	retryGuest            bool
	acquired              bool // the caller holds d of the pool already: runTask takes it over
}

// submit checks the task can run, then runs it in the background (runTask) and returns the
// handle of its result at once.
func (e *Engine) submit(ctx context.Context, t task) (int64, error) {
	fn, err := e.function(ctx, t.module, t.function, abi.KindTask)
	if err != nil {
		return 0, err
	}
	d := demand(t.resources, fn.hints)
	if err := e.poolOf(t.cc).check(d); err != nil {
		return 0, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("task %s: %v", t.function, err)}
	}
	h, obj := e.objects.Pending(t.job)
	tctx, cancel := context.WithCancel(e.ctx)
	obj.Cancel = cancel
	e.wg.Add(1)
	e.workers.run(func() {
		defer e.wg.Done()
		defer cancel()
		out, err := e.runTask(tctx, fn, t, d)
		e.endScope(t.cc, out, obj, false)
		e.objects.Complete(obj, out, err)
	})
	return h, nil
}

// runTask runs t once its resources d are free and returns its output or its *abi.Error.
// System failures are retried up to t.maxRetries times, guest errors only when t asks; a trap or
// a limit is not retried, as the same code on the same input would fail again.
func (e *Engine) runTask(ctx context.Context, fn fnRef, t task, d scheduler.Resources) ([]byte, error) {
	pool := e.poolOf(t.cc)
	if !t.acquired {
		if err := pool.acquire(ctx, d); err != nil {
			return nil, asABIError(err)
		}
	}
	t.cc.held = d
	defer func() { pool.release(t.cc.held) }()
	e.live.tasksRun.Add(1)
	for attempt := 0; ; attempt++ {
		res, err := e.rt.Call(ctx, host.CallRequest{
			Module: fn.hm, Function: t.function, Input: t.input, Job: t.job,
			Grants: t.cc.grants, Limits: t.cc.limits, Context: t.cc,
		})
		if err == nil {
			return res.Output, nil
		}
		if attempt >= t.maxRetries || ctx.Err() != nil || !retryable(err, t.retryGuest) {
			return nil, asABIError(err)
		}
		// What the failed attempt made is not the next attempt's.
		e.objects.ReleaseAll(t.cc.owned)
		e.killActors(t.cc.actors)
		t.cc.owned, t.cc.actors = nil, nil
	}
}

func retryable(err error, guest bool) bool {
	var ae *abi.Error
	if !errors.As(err, &ae) {
		return true
	}
	return ae.Kind == abi.KindSystem || (guest && ae.Kind == abi.KindGuest)
}

// asABIError makes err the *abi.Error a waiting guest reads as the failed task's error.
func asABIError(err error) error {
	var ae *abi.Error
	if errors.As(err, &ae) {
		return ae
	}
	if errors.Is(err, context.Canceled) {
		return &abi.Error{Kind: abi.KindCancelled, Message: "the task was cancelled"}
	}
	return &abi.Error{Kind: abi.KindSystem, Message: err.Error()}
}

// fnRef is a resolved function: its compiled module and the module's resource hints.
type fnRef struct {
	hm    *host.Module
	hints abi.Resources
}

// function resolves a module reference and checks it has function name of the given kind.
// Resolutions are cached until the registry next changes, as resolving copies the module's
// description: half of a call's allocations before the cache.
func (e *Engine) function(ctx context.Context, ref, name string, kind abi.FuncKind) (fnRef, error) {
	key := fnKey{ref, name, kind}
	v := e.regVersion()
	e.mu.Lock()
	if e.fnsVersion != v { // the registry changed, maybe on another node
		clear(e.fns)
		e.fnsVersion = v
	}
	f, ok := e.fns[key]
	e.mu.Unlock()
	if ok {
		return f, nil
	}
	f, err := e.resolveFunction(ctx, ref, name, kind)
	if err != nil {
		return fnRef{}, err
	}
	e.mu.Lock()
	if e.fnsVersion == v {
		e.fns[key] = f
	}
	e.mu.Unlock()
	return f, nil
}

type fnKey struct {
	ref, name string
	kind      abi.FuncKind
}

func (e *Engine) resolveFunction(ctx context.Context, ref, name string, kind abi.FuncKind) (fnRef, error) {
	m, err := e.reg.Resolve(ref)
	if err != nil {
		return fnRef{}, &abi.Error{Kind: abi.KindNotFound, Message: err.Error()}
	}
	i := m.Manifest.Index(name)
	if i < 0 {
		return fnRef{}, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("module %s has no function %q", m.Ref(), name)}
	}
	if got := m.Manifest.Functions[i].Kind; got != kind {
		return fnRef{}, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("%s of module %s is a %s, not a %s", name, m.Ref(), got, kind)}
	}
	hm, err := e.module(ctx, m.Digest)
	if err != nil {
		return fnRef{}, err
	}
	return fnRef{hm: hm, hints: m.Manifest.Resources}, nil
}
