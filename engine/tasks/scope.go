package tasks

import (
	"context"
	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/engine/tensors"
	"github.com/lumenflow/lumen/host"
	"time"
)

// Scope travels with every call the node makes (host.CallRequest.Context): the task's or actor
// call's grants and limits, which work it starts inherits, and what it holds, which ends with it.
type Scope struct {
	Grants host.Grants
	Limits host.Limits
	// Ctx and Deadline are the running attempt's: the tasks it submits end when it fails, is
	// cancelled or times out, and no later than Deadline. Set by the pipeline for tasks and
	// calls; nil and zero for an actor's calls, whose children follow only their job.
	Ctx      context.Context
	Deadline time.Time
	// Held is what the call holds of its pool's resources; it gives them back while it blocks on
	// other work, so a node full of tasks waiting on their children cannot deadlock. Only the
	// goroutine running the call touches it.
	Held scheduler.Resources
	// Owned are the objects the call made (puts, the results of tasks and actor calls it
	// started); Borrowed are the objects passed to it, which it holds while it runs. Both are
	// given up when the call ends.
	Owned, Borrowed []int64
	// Actors are the actors the call created without Detached: they end with it.
	Actors []int64
	// Tensors are the tensors and optimisers the call made (package engine/tensors); they end
	// with it.
	Tensors tensors.Scope
	// Pool is what the call draws its resources from: a placement group's bundle, or nil for
	// the node's.
	Pool *Pool
}

// ScopeOf is the scope of a call (a fresh one for a call the node did not start).
func ScopeOf(c *host.CallInfo) *Scope {
	if sc, ok := c.Context.(*Scope); ok {
		return sc
	}
	return &Scope{}
}
