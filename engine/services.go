package engine

import (
	"context"
	"errors"
	"time"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/tasks"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultMaxRetries is how often a task is retried after a system failure when its request does
// not say.
const DefaultMaxRetries = tasks.DefaultMaxRetries

// callContext is a call's scope (tasks.Scope): grants, limits and what the call holds.
type callContext = tasks.Scope

// poolOf returns what a call draws its resources from.
func (e *Engine) poolOf(cc *callContext) *tasks.Pool {
	if cc != nil && cc.Pool != nil {
		return cc.Pool
	}
	return e.adm
}

// endScope ends a call's hold on its objects: those its output refers to pass to holder (the
// call's result object) or, with keep and no holder, stay with the caller; the rest, and what it
// borrowed, are released.
func (e *Engine) endScope(cc *callContext, out []byte, holder *objects.Object, keep bool) {
	kept, dropped := objects.RefsIn(out, cc.Owned)
	switch {
	case holder != nil:
		e.objects.Adopt(holder, kept)
	case !keep:
		dropped = append(dropped, kept...)
	}
	e.objects.ReleaseAll(dropped)
	e.objects.ReleaseAll(cc.Borrowed)
	e.actors.KillAll(cc.Actors)
	e.tensors.Free(&cc.Tensors)
	cc.Owned, cc.Borrowed, cc.Actors = nil, nil, nil
}

// blocking runs wait with the call's resources given back, and takes them again after (in its
// job's turn). If the engine closes meanwhile, the call no longer holds them. The wait counts
// against the job's quota of waiting calls (tasks.Quota.Waiting): past it, it fails at once.
func (e *Engine) blocking(c *host.CallInfo, wait func() error) error {
	return e.tasks.Wait(c.Job, func() error {
		cc := callCtx(c)
		held := cc.Held
		if held.IsZero() {
			return wait()
		}
		e.poolOf(cc).Release(held)
		cc.Held = nil
		err := wait()
		if aerr := e.poolOf(cc).Reacquire(e.ctx, c.Job, held); aerr == nil {
			cc.Held = held
		}
		return err
	})
}

// services is the engine behind the guests' object, task and actor host functions.
type services struct{ e *Engine }

var _ host.Services = services{}

func callCtx(c *host.CallInfo) *callContext { return tasks.ScopeOf(c) }

func (s services) ObjectPut(_ context.Context, c *host.CallInfo, data []byte) (int64, error) {
	h, err := s.e.objects.Put(c.Job, data)
	if err == nil {
		cc := callCtx(c)
		cc.Owned = append(cc.Owned, h)
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
	// this node now may run on another, as one submitted from outside does. A nested task draws
	// on the node's resources, not its caller's bundle.
	where := tasks.Here
	if cc.Pool == nil && cc.Limits == (host.Limits{Timeout: cc.Limits.Timeout}) {
		where = tasks.Anywhere
	}
	spec := specOf(tasks.FromGuest, where, c.Job, module, req, cc.Grants, cc.Limits)
	spec.Parent = cc // it ends when this call fails, and by its deadline, unless detached
	h, err := s.e.tasks.Submit(ctx, spec)
	if transientQuota(err) {
		h, err = s.submitWithBackoff(ctx, c, spec, err)
	}
	if err != nil {
		return 0, err
	}
	cc.Owned = append(cc.Owned, h)
	return h, nil
}

// transientQuota says whether err refused a task for a quota that frees as work ends: the tasks
// in flight, the submission rate, the node's queue.
func transientQuota(err error) bool {
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindLimit {
		return false
	}
	switch ae.Limit {
	case abi.QuotaJobTasks, abi.QuotaJobSubmitRate, abi.QuotaNodeQueue:
		return true
	}
	return false
}

// Backoff of a guest's task_submit refused for a transient quota: the host retries for the
// guest, doubling the pause from submitBackoffMin up to submitBackoffMax, for up to
// submitBackoffTotal and within the call's deadline, with the call's cpu given back meanwhile.
// Done here once, every SDK's guests get it; the status reaches the guest only when it persists.
const (
	submitBackoffMin   = 5 * time.Millisecond
	submitBackoffMax   = 500 * time.Millisecond
	submitBackoffTotal = 5 * time.Second
)

func (s services) submitWithBackoff(ctx context.Context, c *host.CallInfo, spec *tasks.Spec, err error) (h int64, _ error) {
	stop := time.Now().Add(submitBackoffTotal)
	pause := submitBackoffMin
	berr := s.e.blocking(c, func() error {
		for transientQuota(err) && time.Now().Add(pause).Before(stop) {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(pause):
			}
			pause = min(2*pause, submitBackoffMax)
			h, err = s.e.tasks.Submit(ctx, spec)
		}
		return nil
	})
	if berr != nil && err == nil {
		// Admitted, but the call may not wait any more (its waiting quota): the task runs on.
		return h, nil
	}
	return h, err
}

// specOf is the task a request asks for, of job running module under grants and the limits
// base (the request's timeout wins).
func specOf(from tasks.Origin, where tasks.Placement, job, module string, req *abi.TaskRequest, grants host.Grants, base host.Limits) *tasks.Spec {
	return &tasks.Spec{Origin: from, Placement: where, Job: job, Module: module, Function: req.Function,
		Args: req.Args, ArgsBytes: req.ArgsBytes, Refs: req.Refs, Resources: req.Resources, TimeoutMs: req.TimeoutMs,
		MaxRetries: req.MaxRetries, RetryGuest: req.RetryGuestErrors, Detached: req.Detached, Grants: grants, Limits: base}
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
	h, err := s.e.actors.Create(ctx, c.Job, module, req, cc)
	if err == nil && !req.Detached {
		cc.Actors = append(cc.Actors, h)
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
	h, err := s.e.actors.CallBorrowing(c.Job, req.Actor, req.Method, input, req.Refs)
	if err != nil {
		s.e.objects.ReleaseAll(req.Refs)
		return 0, err
	}
	cc := callCtx(c)
	cc.Owned = append(cc.Owned, h)
	return h, nil
}

func (s services) ActorKill(_ context.Context, c *host.CallInfo, h int64) error {
	return s.e.actors.Kill(c.Job, h)
}

// fnRef is a resolved function: its compiled module and the module's resource hints.
type fnRef = tasks.Fn
