package tasks

import (
	"sync"
	"time"
)

// workers runs functions on reused goroutines. A task's goroutine runs a wazero call whose stack
// is far deeper than a new goroutine's; growing it again for every task cost a quarter of a
// task's time. A worker that finishes waits a while for the next function before it exits, and
// every worker exits when done closes. It is safe for concurrent use.
type workers struct {
	done <-chan struct{}
	idle time.Duration

	mu    sync.Mutex
	ready []chan func() // idle workers, each waiting on its channel
}

func newWorkers(done <-chan struct{}, idle time.Duration) *workers {
	return &workers{done: done, idle: idle}
}

// run runs fn on an idle worker, or on a new one.
func (w *workers) run(fn func()) {
	w.mu.Lock()
	if n := len(w.ready); n > 0 {
		ch := w.ready[n-1]
		w.ready[n-1] = nil
		w.ready = w.ready[:n-1]
		w.mu.Unlock()
		ch <- fn // the worker owns ch and is receiving: this does not block for long
		return
	}
	w.mu.Unlock()
	go w.loop(fn)
}

func (w *workers) loop(fn func()) {
	ch := make(chan func())
	t := time.NewTimer(w.idle)
	defer t.Stop()
	for {
		fn()
		w.mu.Lock()
		w.ready = append(w.ready, ch)
		w.mu.Unlock()
		t.Reset(w.idle)
		select {
		case fn = <-ch:
			continue
		case <-t.C:
		case <-w.done:
		}
		// Leave the idle list; if run took ch meanwhile, its function is on the way.
		w.mu.Lock()
		for i, c := range w.ready {
			if c == ch {
				w.ready = append(w.ready[:i], w.ready[i+1:]...)
				w.mu.Unlock()
				return
			}
		}
		w.mu.Unlock()
		fn = <-ch
	}
}
