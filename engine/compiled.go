package engine

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// compiledWF is a workflow compiled once for many executions (Ray's compiled graphs): its plan,
// each step's resolved function, demand, limits and grants, all decided up front, and warm
// instances in the job's pools. Executions keep no checkpoints: they are meant to be fast.
type compiledWF struct {
	id    string
	plan  *dag.Plan
	job   string
	steps []compiledStep // by plan index
}

type compiledStep struct {
	s   *dag.Step
	fn  fnRef
	d   scheduler.Resources
	t   task // input filled per execution
	lim host.Limits
}

// CompileWorkflow validates a workflow and prepares it for Execute: functions resolved, one warm
// instance per step made ready. It returns the compiled workflow's id.
func (e *Engine) CompileWorkflow(ctx context.Context, doc []byte, job string, grants []abi.Capability) (string, error) {
	pinned := map[string]string{}
	plan, err := e.compileWorkflow(doc, pinned)
	if err != nil {
		return "", err
	}
	cw := &compiledWF{plan: plan, job: jobOr(job), steps: make([]compiledStep, len(plan.Steps))}
	g := host.Grants{Capabilities: grants}
	for i, s := range plan.Steps {
		if strings.HasPrefix(pinned[s.Module], builtinPrefix) {
			return "", &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("step %q: built-in functions (%s) run in submitted workflows, not compiled ones", s.ID, pinned[s.Module])}
		}
		fn, err := e.function(ctx, pinned[s.Module], s.Function, abi.KindTask)
		if err != nil {
			return "", err
		}
		d := demand(s.Resources, fn.hints)
		if err := e.adm.check(d); err != nil {
			return "", &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("step %q: %v", s.ID, err)}
		}
		lim := withTimeout(host.Limits{}, s.TimeoutMs)
		retries := retriesOr(s.Retries)
		cw.steps[i] = compiledStep{s: s, fn: fn, d: d, lim: lim, t: task{
			job: cw.job, module: pinned[s.Module], function: s.Function,
			maxRetries: retries, retryGuest: s.RetryGuestErrors,
			cc: &callContext{grants: g, limits: lim},
		}}
		if err := e.rt.Prewarm(ctx, host.CallRequest{Module: fn.hm, Job: cw.job, Grants: g, Limits: lim}, 1); err != nil {
			return "", err
		}
	}
	var raw [8]byte
	rand.Read(raw[:])
	cw.id = "cw-" + hex.EncodeToString(raw[:])
	e.wmu.Lock()
	e.compiledWFs[cw.id] = cw
	e.wmu.Unlock()
	return cw.id, nil
}

// Execute runs a compiled workflow on input (read by its steps as ${input}) and returns its
// output. Steps run as soon as their inputs are ready; a step that is alone in being ready runs
// on the caller's goroutine. It is safe for concurrent use.
func (e *Engine) Execute(ctx context.Context, id string, input []byte) ([]byte, error) {
	e.wmu.Lock()
	cw := e.compiledWFs[id]
	e.wmu.Unlock()
	if cw == nil {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no compiled workflow %q", id)}
	}
	outputs := make(map[string][]byte, len(cw.steps)+1)
	outputs[dag.InputRef] = input
	done := make(map[string]bool, len(cw.steps))
	for len(done) < len(cw.steps) {
		ready := cw.plan.Ready(done)
		if len(ready) == 0 {
			return nil, &abi.Error{Kind: abi.KindSystem, Message: "compiled workflow: no step can run"}
		}
		if len(ready) == 1 {
			out, err := e.execStep(ctx, &cw.steps[ready[0].Index], outputs)
			if err != nil {
				return nil, err
			}
			outputs[ready[0].ID], done[ready[0].ID] = out, true
			continue
		}
		type res struct {
			id  string
			out []byte
			err error
		}
		ch := make(chan res, len(ready))
		for _, s := range ready {
			go func(cs *compiledStep) {
				out, err := e.execStep(ctx, cs, outputs)
				ch <- res{cs.s.ID, out, err}
			}(&cw.steps[s.Index])
		}
		var first error
		for range ready {
			r := <-ch
			if r.err != nil && first == nil {
				first = r.err
			}
			outputs[r.id], done[r.id] = r.out, true
		}
		if first != nil {
			return nil, first
		}
	}
	return cw.plan.Output.Render(outputs, nil, 0)
}

// execStep runs one step of a compiled workflow (every element, for a map step). outputs is only
// read while steps run.
func (e *Engine) execStep(ctx context.Context, cs *compiledStep, outputs map[string][]byte) ([]byte, error) {
	run := func(in []byte) ([]byte, error) {
		t := cs.t
		t.input = in
		t.cc = &callContext{grants: cs.t.cc.grants, limits: cs.lim}
		out, err := e.runTask(ctx, cs.fn, t, cs.d)
		e.endScope(t.cc, nil, nil, false)
		if err != nil {
			return nil, stepErr(cs.s.ID, err)
		}
		return out, nil
	}
	if cs.s.Map == nil {
		in, err := cs.s.RenderInput(outputs, nil, 0)
		if err != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: err.Error()}
		}
		return run(in)
	}
	items, err := mapItems(cs.s, outputs)
	if err != nil {
		return nil, err
	}
	parts := make([][]byte, len(items))
	errs := make(chan error, len(items))
	for i, item := range items {
		in, err := cs.s.RenderInput(outputs, item, i)
		if err != nil {
			return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("element %d: %v", i, err)}
		}
		go func(i int, in []byte) {
			out, err := run(in)
			parts[i] = out
			errs <- err
		}(i, in)
	}
	var first error
	for range items {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return nil, first
	}
	return joinJSON(cs.s, parts)
}

func stepErr(id string, err error) error {
	ae, _ := asABIError(err).(*abi.Error)
	return &abi.Error{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: fmt.Sprintf("step %q: %s", id, ae.Message)}
}
