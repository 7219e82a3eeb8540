package gpu

import (
	"fmt"
	"runtime"
	"sync"
	"weak"
)

// Arena counts the bytes of the tensors made through it against a limit and frees them all at
// once. Storage that nothing references any more leaves the count when the garbage collector
// reclaims it; before refusing an allocation the arena forces one collection, so the limit
// applies to live tensor bytes. Views share their parent's storage and cost nothing.
//
// A nil *Arena is valid: tensors made through it are not counted. Arena methods are safe for
// concurrent use, but Free must not race with ops that read the arena's tensors.
type Arena struct {
	mu     sync.Mutex
	limit  int64
	used   int64
	peak   int64
	nextID uint64
	live   map[uint64]liveEntry
	freed  bool
}

// NewArena returns an arena that refuses allocations past limitBytes; limitBytes <= 0 means
// no limit (the arena still counts and frees).
func NewArena(limitBytes int64) *Arena {
	return &Arena{limit: limitBytes, live: map[uint64]liveEntry{}}
}

// Used is the number of bytes of live tensors counted now.
func (a *Arena) Used() int64 {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.used
}

// Peak is the largest Used has been.
func (a *Arena) Peak() int64 {
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.peak
}

// Limit is the arena's byte limit (<= 0: none).
func (a *Arena) Limit() int64 {
	if a == nil {
		return 0
	}
	return a.limit
}

// Free releases every tensor of the arena: their data is dropped and any later use returns
// ErrFreed, as do allocations in the arena.
func (a *Arena) Free() {
	if a == nil {
		return
	}
	a.mu.Lock()
	var sts []*storage
	for id, e := range a.live {
		if s := e.w.Value(); s != nil {
			sts = append(sts, s)
		}
		delete(a.live, id)
	}
	a.used = 0
	a.freed = true
	a.mu.Unlock()
	for _, s := range sts {
		s.release()
	}
}

func (a *Arena) reserve(op string, n int64) (uint64, error) {
	for attempt := 0; ; attempt++ {
		a.mu.Lock()
		if a.freed {
			a.mu.Unlock()
			return 0, opErr(op, ErrFreed, "arena already freed")
		}
		if a.limit <= 0 || a.used+n <= a.limit {
			a.used += n
			a.peak = max(a.peak, a.used)
			a.nextID++
			id := a.nextID
			a.mu.Unlock()
			return id, nil
		}
		used := a.used
		a.mu.Unlock()
		if attempt > 0 {
			return 0, &OpError{Op: op, Err: ErrBudget,
				Msg: fmt.Sprintf("%d bytes more would make %d of a %d-byte limit", n, used+n, a.limit)}
		}
		// Storage that is unreachable but not yet collected still counts: collect once, then
		// uncount what the collector cleared (its cleanup, which runs later, finds it gone).
		runtime.GC()
		a.mu.Lock()
		for id, e := range a.live {
			if e.w.Value() == nil {
				delete(a.live, id)
				a.used -= e.n
			}
		}
		a.mu.Unlock()
	}
}

type liveEntry struct {
	w weak.Pointer[storage]
	n int64
}

func (a *Arena) track(id uint64, s *storage) {
	a.mu.Lock()
	a.live[id] = liveEntry{weak.Make(s), s.nbytes}
	a.mu.Unlock()
	runtime.AddCleanup(s, func(x cleanupArg) { x.a.forget(x.id, x.n) }, cleanupArg{a, id, s.nbytes})
}

type cleanupArg struct {
	a  *Arena
	id uint64
	n  int64
}

// forget uncounts a storage that was collected or freed.
func (a *Arena) forget(id uint64, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.live[id]; ok {
		delete(a.live, id)
		a.used -= n
	}
}
