package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	return s.e.objects.put(c.Job, data)
}

func (s services) ObjectGet(ctx context.Context, c *host.CallInfo, h int64, timeout time.Duration) ([]byte, error) {
	return s.e.objects.get(ctx, c.Job, h, timeout)
}

func (s services) ObjectRelease(_ context.Context, c *host.CallInfo, h int64) error {
	return s.e.objects.release(c.Job, h)
}

func (s services) TaskSubmit(ctx context.Context, c *host.CallInfo, req *abi.TaskRequest) (int64, error) {
	module := req.Module
	if module == "" {
		module = c.Module
	}
	input := []byte(req.Args)
	if req.ArgsBytes != nil {
		input = req.ArgsBytes
	}
	cc := callCtx(c)
	lim := cc.limits
	if req.TimeoutMs > 0 {
		lim.Timeout = time.Duration(req.TimeoutMs) * time.Millisecond
	}
	retries := DefaultMaxRetries
	if req.MaxRetries != nil {
		retries = *req.MaxRetries
	}
	return s.e.submit(ctx, task{
		job: c.Job, module: module, function: req.Function, input: input,
		cc: &callContext{grants: cc.grants, limits: lim}, maxRetries: retries, retryGuest: req.RetryGuestErrors,
	})
}

func (s services) TaskCancel(_ context.Context, c *host.CallInfo, h int64) error {
	o, err := s.e.objects.lookup(c.Job, h)
	if err != nil {
		return err
	}
	if o.cancel != nil {
		o.cancel()
	}
	return nil
}

func (s services) Wait(ctx context.Context, c *host.CallInfo, req *abi.WaitRequest) (*abi.WaitResult, error) {
	return s.e.objects.wait(ctx, c.Job, req)
}

func (s services) ActorCreate(ctx context.Context, c *host.CallInfo, req *abi.ActorCreateRequest) (int64, error) {
	module := req.Module
	if module == "" {
		module = c.Module
	}
	return s.e.createActor(ctx, c.Job, module, req, callCtx(c))
}

func (s services) ActorCall(_ context.Context, c *host.CallInfo, req *abi.ActorCallRequest) (int64, error) {
	input := []byte(req.Args)
	if req.ArgsBytes != nil {
		input = req.ArgsBytes
	}
	return s.e.callActor(c.Job, req.Actor, req.Method, input)
}

func (s services) ActorKill(_ context.Context, c *host.CallInfo, h int64) error {
	return s.e.killActor(c.Job, h)
}

// task is one task to run.
type task struct {
	job, module, function string
	input                 []byte
	cc                    *callContext
	maxRetries            int
	retryGuest            bool
}

// submit checks the task can run, then runs it in the background and returns the handle of its
// result. System failures are retried up to maxRetries times, guest errors only when asked; a
// trap or a limit is not retried, as running the same code on the same input would fail again.
func (e *Engine) submit(ctx context.Context, t task) (int64, error) {
	hm, err := e.function(ctx, t.module, t.function, abi.KindTask)
	if err != nil {
		return 0, err
	}
	h, obj := e.objects.pending(t.job)
	tctx, cancel := context.WithCancel(e.ctx)
	obj.cancel = cancel
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		var res *host.Result
		var err error
		for attempt := 0; ; attempt++ {
			res, err = e.rt.Call(tctx, host.CallRequest{
				Module: hm, Function: t.function, Input: t.input, Job: t.job,
				Grants: t.cc.grants, Limits: t.cc.limits, Context: t.cc,
			})
			if err == nil || attempt >= t.maxRetries || tctx.Err() != nil || !retryable(err, t.retryGuest) {
				break
			}
		}
		if err != nil {
			e.objects.complete(obj, nil, asABIError(err))
			return
		}
		e.objects.complete(obj, res.Output, nil)
	}()
	return h, nil
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

// function resolves a module reference and checks it has function name of the given kind.
func (e *Engine) function(ctx context.Context, ref, name string, kind abi.FuncKind) (*host.Module, error) {
	m, err := e.reg.Resolve(ref)
	if err != nil {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: err.Error()}
	}
	i := m.Manifest.Index(name)
	if i < 0 {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("module %s has no function %q", m.Ref(), name)}
	}
	if got := m.Manifest.Functions[i].Kind; got != kind {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("%s of module %s is a %s, not a %s", name, m.Ref(), got, kind)}
	}
	return e.module(ctx, m.Digest)
}
