package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/workflows"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// steps runs the steps of workflows (package engine/workflows) on this node: built-in
// functions in the engine, data pipelines as data jobs, and every other step as a task, here or
// on another node with room.
type steps struct{ e *Engine }

func (st steps) Builtin(module, function string) (abi.Function, bool, bool) {
	if !strings.HasPrefix(module, builtinPrefix) {
		return abi.Function{}, false, false
	}
	f, ok := builtinFunction(module, function)
	return f, true, ok
}

func (st steps) Pipeline(ctx context.Context, c workflows.Call, outputs map[string][]byte, started func(string)) ([]byte, error) {
	return st.e.runPipelineStep(ctx, c, outputs, started) // datajobs.go
}

func (st steps) Prepare(ctx context.Context, c workflows.Call) (func([]byte) ([]byte, error), error) {
	e, s, mod := st.e, c.Step, c.Module
	if strings.HasPrefix(mod, builtinPrefix) {
		// A built-in function runs in the engine, under the step's timeout when it has one.
		return func(input []byte) ([]byte, error) {
			bctx := ctx
			if s.TimeoutMs > 0 {
				var cancel context.CancelFunc
				bctx, cancel = context.WithTimeout(ctx, time.Duration(s.TimeoutMs)*time.Millisecond)
				defer cancel()
			}
			return e.runBuiltin(bctx, mod, s.Function, input)
		}, nil
	}
	fn, err := e.function(ctx, mod, s.Function, abi.KindTask)
	if err != nil {
		return nil, err
	}
	retries, lim := retriesOr(s.Retries), withTimeout(host.Limits{}, s.TimeoutMs)
	d := demand(s.Resources, fn.hints)
	errHere := e.adm.check(d)
	if errHere != nil && !e.cluster.Peers() {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: errHere.Error()}
	}
	beat, _ := e.cfg.Cluster.Intervals()
	return func(input []byte) ([]byte, error) {
		// No room here now and room elsewhere: the step (or this element of its map) runs there,
		// and its output comes back here to be checkpointed. A step this node can never hold
		// waits for room elsewhere.
		acquired := false
		for e.cluster.Peers() {
			if acquired = errHere == nil && e.adm.tryAcquire(d); acquired {
				break // room here: it runs here
			}
			if node := e.cluster.Place(d, nil); node != "" {
				t := remoteTask{job: c.Job, digest: fn.hm.Digest, function: s.Function,
					grants: c.Grants, timeoutMs: s.TimeoutMs, retries: retries, retryGuest: s.RetryGuestErrors, demand: d}
				if json.Valid(input) {
					t.args = input
				} else {
					t.argsBytes = input
				}
				return e.runStepOn(ctx, node, t)
			}
			if errHere == nil {
				break
			}
			select {
			case <-ctx.Done():
				return nil, &abi.Error{Kind: abi.KindCancelled, Message: "the workflow was cancelled"}
			case <-time.After(beat):
			}
		}
		if errHere != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: errHere.Error()}
		}
		cc := &callContext{grants: host.Grants{Capabilities: c.Grants}, limits: lim}
		out, err := e.runTask(ctx, fn, task{
			job: c.Job, module: mod, function: s.Function, input: input,
			cc: cc, maxRetries: retries, retryGuest: s.RetryGuestErrors, acquired: acquired,
		}, d)
		e.endScope(cc, nil, nil, false) // a step's objects do not outlive it
		return out, err
	}, nil
}

// Compile prepares a step of a compiled workflow: its function resolved, its demand checked
// against this node (compiled workflows run here), one instance warm.
func (st steps) Compile(ctx context.Context, c workflows.Call) (func(context.Context, []byte) ([]byte, error), error) {
	e, s := st.e, c.Step
	fn, err := e.function(ctx, c.Module, s.Function, abi.KindTask)
	if err != nil {
		return nil, err
	}
	d := demand(s.Resources, fn.hints)
	if err := e.adm.check(d); err != nil {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("step %q: %v", s.ID, err)}
	}
	lim := withTimeout(host.Limits{}, s.TimeoutMs)
	g := host.Grants{Capabilities: c.Grants}
	if err := e.rt.Prewarm(ctx, host.CallRequest{Module: fn.hm, Job: c.Job, Grants: g, Limits: lim}, 1); err != nil {
		return nil, err
	}
	t := task{job: c.Job, module: c.Module, function: s.Function, maxRetries: retriesOr(s.Retries), retryGuest: s.RetryGuestErrors}
	return func(ctx context.Context, in []byte) ([]byte, error) {
		t := t
		t.input = in
		t.cc = &callContext{grants: g, limits: lim}
		out, err := e.runTask(ctx, fn, t, d)
		e.endScope(t.cc, nil, nil, false)
		return out, err
	}, nil
}
