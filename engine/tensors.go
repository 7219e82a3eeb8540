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

// Tensors is the node's tensors and optimisers, by job: their budget, use, and DropJob.
func (e *Engine) Tensors() *tensors.Store { return e.tensors }
