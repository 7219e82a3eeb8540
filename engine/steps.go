package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lumenflow/lumen/engine/tasks"
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
	t, err := e.tasks.Prepare(ctx, stepSpec(tasks.FromStep, tasks.Anywhere, c))
	if err != nil {
		return nil, err
	}
	return func(input []byte) ([]byte, error) { return t.Run(ctx, input) }, nil
}

// stepSpec is the task a workflow step's call runs.
func stepSpec(from tasks.Origin, where tasks.Placement, c workflows.Call) tasks.Spec {
	s := c.Step
	return tasks.Spec{Origin: from, Placement: where, Job: c.Job, Module: c.Module, Function: s.Function,
		Resources: s.Resources, TimeoutMs: s.TimeoutMs, MaxRetries: s.Retries, RetryGuest: s.RetryGuestErrors,
		Grants: host.Grants{Capabilities: c.Grants}}
}

// Compile prepares a step of a compiled workflow: its function resolved, its demand checked
// against this node (compiled workflows run here), one instance warm.
func (st steps) Compile(ctx context.Context, c workflows.Call) (func(context.Context, []byte) ([]byte, error), error) {
	t, err := st.e.tasks.Prepare(ctx, stepSpec(tasks.FromCompiled, tasks.Here, c))
	var ae *abi.Error
	if errors.As(err, &ae) && ae.Kind == abi.KindBadInput {
		return nil, &abi.Error{Kind: abi.KindBadInput, Message: fmt.Sprintf("step %q: %s", c.Step.ID, ae.Message)}
	} else if err != nil {
		return nil, err
	}
	if err := t.Prewarm(ctx, 1); err != nil {
		return nil, err
	}
	return t.Run, nil
}
