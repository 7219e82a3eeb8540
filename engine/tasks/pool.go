package tasks

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/lumenflow/lumen/engine/scheduler"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultMaxQueued is how many calls may wait for room in a pool at once when NewPool is not told:
// past it, work is refused at once (abi.QuotaNodeQueue) instead of queued without bound.
const DefaultMaxQueued = 50_000

// Pool lets work start when resources allow: a ledger of what the node (or a placement group's
// bundle) has, and the calls waiting for what is in use. Waiters queue per job, and the jobs take
// turns: when room frees, the head of the next job in turn is served, so one job's thousands of
// queued tasks delay another job's task by one of theirs, not by all of them. Within a job, and
// at the head of each turn, order is strict (a large demand at the head is not starved by small
// ones behind it). The queue is bounded: past MaxQueued waiters, Acquire refuses at once. It is
// safe for concurrent use.
type Pool struct {
	mu     sync.Mutex
	ledger *scheduler.Ledger
	// queues holds each job's waiters in arrival order; turn lists the jobs with waiters, the
	// next to be served first.
	queues    map[string][]*waiter
	turn      []string
	queued    int
	maxQueued int
}

type waiter struct {
	job     string
	d       scheduler.Resources
	granted chan struct{}
}

// NewPool returns a Pool of total that queues at most DefaultMaxQueued waiters.
func NewPool(total scheduler.Resources) *Pool {
	return &Pool{ledger: scheduler.NewLedger(total), queues: map[string][]*waiter{}, maxQueued: DefaultMaxQueued}
}

// SetMaxQueued bounds the waiters (n <= 0: DefaultMaxQueued).
func (a *Pool) SetMaxQueued(n int) {
	if n <= 0 {
		n = DefaultMaxQueued
	}
	a.mu.Lock()
	a.maxQueued = n
	a.mu.Unlock()
}

// Total is what the pool has in all.
func (a *Pool) Total() scheduler.Resources { return a.ledger.Total() }

// DefaultResources is what a node offers when its configuration does not say: its cores and its
// memory.
func DefaultResources() scheduler.Resources {
	r := scheduler.Resources{scheduler.CPU: float64(runtime.NumCPU())}
	if m := physicalMemory(); m > 0 {
		r[scheduler.Memory] = float64(m)
	}
	return r
}

// Check refuses at once what can never fit on the node.
func (a *Pool) Check(d scheduler.Resources) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ledger.Check(d)
}

// Acquire waits until d is free and takes it, or until ctx ends. It queues as job "".
func (a *Pool) Acquire(ctx context.Context, d scheduler.Resources) error {
	return a.AcquireFor(ctx, "", d)
}

// AcquireFor waits, in job's queue, until d is free and takes it, or until ctx ends. A full
// queue refuses at once with an *abi.Error of abi.QuotaNodeQueue.
func (a *Pool) AcquireFor(ctx context.Context, job string, d scheduler.Resources) error {
	return a.acquire(ctx, job, d, true)
}

// Reacquire is AcquireFor for a call that held d before and gave it back while it waited on
// other work: it is not refused for a full queue, as the call is running already.
func (a *Pool) Reacquire(ctx context.Context, job string, d scheduler.Resources) error {
	return a.acquire(ctx, job, d, false)
}

func (a *Pool) acquire(ctx context.Context, job string, d scheduler.Resources, bounded bool) error {
	if d.IsZero() {
		return nil
	}
	a.mu.Lock()
	if a.queued == 0 && a.ledger.TryAcquire(d) {
		a.mu.Unlock()
		return nil
	}
	if bounded && a.queued >= a.maxQueued {
		a.mu.Unlock()
		return &abi.Error{Kind: abi.KindLimit, Limit: abi.QuotaNodeQueue,
			Message: fmt.Sprintf("the node is overloaded: %d calls already wait for room; try again later", a.maxQueued)}
	}
	w := &waiter{job: job, d: d, granted: make(chan struct{})}
	if len(a.queues[job]) == 0 {
		a.turn = append(a.turn, job)
	}
	a.queues[job] = append(a.queues[job], w)
	a.queued++
	a.mu.Unlock()
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		if a.remove(w) {
			a.mu.Unlock()
			return ctx.Err()
		}
		a.mu.Unlock()
		// Granted while ctx ended: give it back.
		a.Release(d)
		return ctx.Err()
	}
}

// remove takes w out of its queue; false when it was granted already. a.mu is held.
func (a *Pool) remove(w *waiter) bool {
	q := a.queues[w.job]
	for i, x := range q {
		if x != w {
			continue
		}
		q = append(q[:i], q[i+1:]...)
		a.queued--
		if len(q) > 0 {
			a.queues[w.job] = q
			return true
		}
		delete(a.queues, w.job)
		for j, job := range a.turn {
			if job == w.job {
				a.turn = append(a.turn[:j], a.turn[j+1:]...)
				break
			}
		}
		// A waiter that left may have been what kept the others waiting.
		a.grant()
		return true
	}
	return false
}

// TryAcquire takes d if it is free now and nobody waits.
func (a *Pool) TryAcquire(d scheduler.Resources) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queued == 0 && a.ledger.TryAcquire(d)
}

// Release gives d back and wakes the waiters that now fit.
func (a *Pool) Release(d scheduler.Resources) {
	if d.IsZero() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ledger.Release(d)
	a.grant()
}

// grant serves the jobs in turn, the head of each, while the head of the job in turn fits. a.mu
// is held.
func (a *Pool) grant() {
	for len(a.turn) > 0 {
		job := a.turn[0]
		q := a.queues[job]
		if !a.ledger.TryAcquire(q[0].d) {
			return
		}
		close(q[0].granted)
		q[0] = nil
		q = q[1:]
		a.queued--
		a.turn = a.turn[1:]
		if len(q) > 0 {
			a.queues[job] = q
			a.turn = append(a.turn, job) // its next waiter goes to the back of the turn
		} else {
			delete(a.queues, job)
		}
	}
}

// Queued reports how many calls wait for room.
func (a *Pool) Queued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.queued
}

// Available reports what is free now.
func (a *Pool) Available() scheduler.Resources {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ledger.Available()
}
