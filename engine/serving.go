package engine

import (
	"context"
	"fmt"

	"github.com/lumenflow/lumen/engine/datajobs"
	"github.com/lumenflow/lumen/engine/serving"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Model serving lives in engine/serving; the engine opens it (openServing), gives it the
// replicated state for batch checkpoints (servingCheckpoints), hands it to the host as
// model_chat's engine, and runs its training step as the built-in workflow function
// lumen:model.train.

// openServing opens the node's model serving. It runs in Open before the host starts, which
// calls it for model_chat; the checkpoints it is given are read only once Open has returned.
func (e *Engine) openServing() error {
	s, err := serving.Open(e.cfg.Model, serving.Deps{
		Checkpoints: servingCheckpoints{e},
		Context:     e.ctx,
		Logf:        e.logf,
		DataRoot:    e.cfg.DataRoot,
		CheckPaths:  datajobs.CheckPaths,
	})
	if err != nil {
		return fmt.Errorf("engine: %w", err)
	}
	e.serving = s
	return nil
}

// servingCheckpoints is serving.Checkpoints over the engine's replicated state.
type servingCheckpoints struct{ e *Engine }

func (c servingCheckpoints) Scan(prefix string, fn func(key string, val []byte) error) error {
	return c.e.state.scan(prefix, fn)
}

func (c servingCheckpoints) Put(key string, val []byte) error { return c.e.state.put(key, val) }

func (c servingCheckpoints) DeletePrefix(prefix string) error {
	cmd := &raftstore.Command{}
	_ = c.e.state.scan(prefix, func(key string, _ []byte) error {
		cmd.Ops = append(cmd.Ops, raftstore.Op{Kind: raftstore.OpDelete, Key: []byte(key)})
		return nil
	})
	if len(cmd.Ops) == 0 {
		return nil
	}
	return c.e.node.Apply(c.e.ctx, cmd)
}

// Serving is the node's model service: the models it serves, for the API layer to mount the
// OpenAI-compatible routes (ok false when no model is configured), and chat requests.
func (e *Engine) Serving() *serving.Service { return e.serving }

// Done is closed when the engine starts closing: the API closes what it serves over the engine
// (the OpenAI handler and its batches) no later than that.
func (e *Engine) Done() <-chan struct{} { return e.ctx.Done() }

// Built-in workflow modules: host functions a workflow step can name like a module's, with no
// WASM behind them. Their module references start with "lumen:".
const builtinPrefix = "lumen:"

var builtins = map[string]map[string]abi.Function{
	"lumen:model": {"train": serving.TrainStepFunction},
}

// builtinFunction describes a built-in function, or reports it unknown.
func builtinFunction(module, function string) (abi.Function, bool) {
	f, ok := builtins[module][function]
	return f, ok
}

// runBuiltin runs a built-in function of a workflow step: lumen:model.train is the serving's
// training step, which writes under the node's data root.
func (e *Engine) runBuiltin(ctx context.Context, module, function string, input []byte) ([]byte, error) {
	if module != "lumen:model" || function != "train" {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no built-in function %s.%s", module, function)}
	}
	return e.serving.TrainStep(ctx, input)
}
