package engine

import (
	"context"

	"github.com/lumenflow/lumen/engine/wire"
	"github.com/lumenflow/lumen/engine/workflows"
	"github.com/lumenflow/lumen/raftstore"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Workflow statuses, as package engine/workflows defines them.
type (
	WorkflowStatus = workflows.Status
	StepStatus     = workflows.StepStatus
)

// Workflow and step states.
const (
	WorkflowRunning   = workflows.Running
	WorkflowSucceeded = workflows.Succeeded
	WorkflowFailed    = workflows.Failed
	WorkflowCancelled = workflows.Cancelled
	StepWaiting       = workflows.StepWaiting
	StepRunning       = workflows.StepRunning
	StepDone          = workflows.StepDone
	StepFailed        = workflows.StepFailed
	StepCancelled     = workflows.StepCancelled
)

// Workflows is the node's durable and compiled workflows.
func (e *Engine) Workflows() *workflows.Manager { return e.workflows }

// SubmitWorkflow validates a workflow, stores it and starts it (workflows.Manager.Submit) as
// job (default "default").
func (e *Engine) SubmitWorkflow(ctx context.Context, doc []byte, job string, grants []abi.Capability) (string, error) {
	return e.workflows.Submit(ctx, doc, wire.JobOr(job), grants)
}

// CompileWorkflow prepares a workflow for Execute (workflows.Manager.Compile) as job.
func (e *Engine) CompileWorkflow(ctx context.Context, doc []byte, job string, grants []abi.Capability) (string, error) {
	return e.workflows.Compile(ctx, doc, wire.JobOr(job), grants)
}

// wfStore is the replicated state as workflows keep it.
type wfStore struct{ s *state }

func (w wfStore) Get(key string) ([]byte, error)     { return w.s.get(key) }
func (w wfStore) PutMany(kv map[string][]byte) error { return w.s.putMany(kv) }
func (w wfStore) PutManyIf(kv map[string][]byte, conds ...raftstore.Cond) error {
	return w.s.putManyIf(kv, conds...)
}
func (w wfStore) Scan(prefix string, fn func(key string, val []byte) error) error {
	return w.s.scan(prefix, fn)
}
func (w wfStore) Linearize(ctx context.Context) error { return w.s.node.Linearize(ctx) }
