package engine

import (
	"github.com/lumenflow/lumen/engine/tensors"
	"github.com/lumenflow/lumen/host"
)

// DefaultTensorBytesPerJob is the default of Config.TensorBytesPerJob.
const DefaultTensorBytesPerJob = tensors.DefaultBytesPerJob

// tensorScope is the scope a call's tensors and optimisers join: its callContext's, so that they
// end with the call, and an actor's calls, which share the actor's callContext, share its scope.
func tensorScope(c *host.CallInfo) *tensors.Scope {
	return &callCtx(c).Tensors
}

// DropJobTensors frees every tensor and optimiser of job. Handles of job are unknown after; the
// job's budget starts again from zero.
func (e *Engine) DropJobTensors(job string) { e.tensors.DropJob(job) }

// TensorStats reports the bytes of job's live tensors and the most they reached.
func (e *Engine) TensorStats(job string) (used, peak int64) { return e.tensors.Stats(job) }
