package workflows

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/lumenflow/lumen/engine/dag"
	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/sdk/abi"
)

// compiled is a workflow compiled once for many executions (Ray's compiled graphs): its plan
// and each step's runner, decided up front (functions resolved, demand checked, instances warm
// in the job's pools). Executions keep no checkpoints: they are meant to be fast.
type compiled struct {
	id    string
	plan  *dag.Plan
	job   string
	steps []compiledStep // by plan index
}

type compiledStep struct {
	s      *dag.Step
	module string // the digest it runs
	run    func(ctx context.Context, input []byte) ([]byte, error)
}

// Compile validates a workflow and prepares it for Execute: each step prepared by the node's
// Steps.Compile. It returns the compiled workflow's id.
func (m *Manager) Compile(ctx context.Context, doc []byte, job string, grants []abi.Capability) (string, error) {
	pinned := map[string]string{}
	plan, err := m.compileWorkflow(doc, pinned)
	if err != nil {
		return "", err
	}
	cw := &compiled{plan: plan, job: job, steps: make([]compiledStep, len(plan.Steps))}
	for i, s := range plan.Steps {
		if _, isBuiltin, _ := m.deps.Steps.Builtin(pinned[s.Module], s.Function); isBuiltin {
			return "", &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("step %q: built-in functions (%s) run in submitted workflows, not compiled ones", s.ID, pinned[s.Module])}
		}
		run, err := m.deps.Steps.Compile(ctx, Call{Job: job, Grants: grants, Module: pinned[s.Module], Step: s})
		if err != nil {
			return "", err
		}
		cw.steps[i] = compiledStep{s: s, module: pinned[s.Module], run: run}
	}
	var raw [8]byte
	rand.Read(raw[:])
	cw.id = "cw-" + hex.EncodeToString(raw[:])
	m.mu.Lock()
	m.compiled[cw.id] = cw
	m.mu.Unlock()
	return cw.id, nil
}

// Execute runs a compiled workflow on input (read by its steps as ${input}) and returns its
// output. Steps run as soon as their inputs are ready; a step that is alone in being ready runs
// on the caller's goroutine. It is safe for concurrent use.
func (m *Manager) Execute(ctx context.Context, id string, input []byte) ([]byte, error) {
	m.mu.Lock()
	cw := m.compiled[id]
	m.mu.Unlock()
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
			out, err := execStep(ctx, &cw.steps[ready[0].Index], outputs)
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
				out, err := execStep(ctx, cs, outputs)
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
func execStep(ctx context.Context, cs *compiledStep, outputs map[string][]byte) ([]byte, error) {
	run := func(in []byte) ([]byte, error) {
		out, err := cs.run(ctx, in)
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
	ae := wire.ABIError(err, "step")
	return &abi.Error{Kind: ae.Kind, Limit: ae.Limit, Code: ae.Code, Message: fmt.Sprintf("step %q: %s", id, ae.Message)}
}
