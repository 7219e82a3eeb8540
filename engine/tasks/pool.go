package tasks

import (
	"context"
	"runtime"
	"sync"

	"github.com/lumenflow/lumen/engine/scheduler"
)

// Pool lets work start when resources allow: a ledger of what the node (or a placement group's
// bundle) has, and the waiters queued for what is in use, served strictly in arrival order (a
// large demand at the head is not starved by small ones behind it). It is safe for concurrent use.
type Pool struct {
	mu      sync.Mutex
	ledger  *scheduler.Ledger
	waiters []*waiter
}

type waiter struct {
	d       scheduler.Resources
	granted chan struct{}
}

// NewPool returns a Pool of total.
func NewPool(total scheduler.Resources) *Pool {
	return &Pool{ledger: scheduler.NewLedger(total)}
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

// Acquire waits until d is free and takes it, or until ctx ends.
func (a *Pool) Acquire(ctx context.Context, d scheduler.Resources) error {
	if d.IsZero() {
		return nil
	}
	a.mu.Lock()
	if len(a.waiters) == 0 && a.ledger.TryAcquire(d) {
		a.mu.Unlock()
		return nil
	}
	w := &waiter{d: d, granted: make(chan struct{})}
	a.waiters = append(a.waiters, w)
	a.mu.Unlock()
	select {
	case <-w.granted:
		return nil
	case <-ctx.Done():
		a.mu.Lock()
		for i, x := range a.waiters {
			if x == w {
				a.waiters = append(a.waiters[:i], a.waiters[i+1:]...)
				a.mu.Unlock()
				return ctx.Err()
			}
		}
		a.mu.Unlock()
		// Granted while ctx ended: give it back.
		a.Release(d)
		return ctx.Err()
	}
}

// TryAcquire takes d if it is free now and nobody waits before it.
func (a *Pool) TryAcquire(d scheduler.Resources) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiters) == 0 && a.ledger.TryAcquire(d)
}

// Release gives d back and wakes the waiters that now fit.
func (a *Pool) Release(d scheduler.Resources) {
	if d.IsZero() {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ledger.Release(d)
	n := 0
	for n < len(a.waiters) && a.ledger.TryAcquire(a.waiters[n].d) {
		close(a.waiters[n].granted)
		a.waiters[n] = nil
		n++
	}
	a.waiters = a.waiters[n:]
}

// Available reports what is free now.
func (a *Pool) Available() scheduler.Resources {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ledger.Available()
}
