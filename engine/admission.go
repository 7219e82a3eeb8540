package engine

import (
	"context"
	"runtime"
	"sync"

	"github.com/lumenflow/lumen/engine/scheduler"
)

// admission lets work start when the node's resources allow: a ledger of what the node has, and
// the waiters queued for what is in use, served strictly in arrival order (a large demand at the
// head is not starved by small ones behind it). It is safe for concurrent use.
type admission struct {
	mu      sync.Mutex
	ledger  *scheduler.Ledger
	waiters []*waiter
}

type waiter struct {
	d       scheduler.Resources
	granted chan struct{}
}

func newAdmission(total scheduler.Resources) *admission {
	return &admission{ledger: scheduler.NewLedger(total)}
}

// defaultResources is what a node offers when its configuration does not say: its cores and its
// memory.
func defaultResources() scheduler.Resources {
	r := scheduler.Resources{scheduler.CPU: float64(runtime.NumCPU())}
	if m := physicalMemory(); m > 0 {
		r[scheduler.Memory] = float64(m)
	}
	return r
}

// check refuses at once what can never fit on the node.
func (a *admission) check(d scheduler.Resources) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ledger.Check(d)
}

// acquire waits until d is free and takes it, or until ctx ends.
func (a *admission) acquire(ctx context.Context, d scheduler.Resources) error {
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
		a.release(d)
		return ctx.Err()
	}
}

// tryAcquire takes d if it is free now and nobody waits before it.
func (a *admission) tryAcquire(d scheduler.Resources) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.waiters) == 0 && a.ledger.TryAcquire(d)
}

// release gives d back and wakes the waiters that now fit.
func (a *admission) release(d scheduler.Resources) {
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

// available reports what is free now.
func (a *admission) available() scheduler.Resources {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.ledger.Available()
}
