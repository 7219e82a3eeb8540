// Package tensors owns a node's host tensors and optimisers, per job: the tensors and optimisers
// guests drive by handle through the tensor_* and optim_* host functions, each job's byte budget
// for them, and the rules of their lifetime (see Store). It implements host.Tensors (Store.Host);
// the engine decides which Scope a call's tensors join and frees a Scope when its calls end.
//
// It may import gpu, host, sdk/abi and the standard library, nothing else of lumen.
package tensors

import (
	"sync"

	"github.com/lumenflow/lumen/gpu"
)

// DefaultBytesPerJob is the byte budget of a job's tensors when New is given none.
const DefaultBytesPerJob = 1 << 30

// Store holds a node's tensors and optimisers, per job.
//
// Tensors are per job, like objects: a handle names a tensor or an optimiser of its job only, and
// a job's tensors count against one gpu.Arena of the Store's limit in bytes, past which
// allocations fail with abi.ErrLimit.
//
// Lifetime: a tensor or optimiser lives until tensor_free, or until the call that made it ends —
// except that an actor's calls share the actor's scope, so what an actor makes (its model's
// weights, its optimiser) lives as long as the actor. An actor that trains across calls should
// free its intermediates. DropJob frees what is left of a job. (The engine keeps a Scope per call,
// one per actor for all its calls, and frees it with Free when the call or the actor ends.)
//
// Views (reshape, transpose, permute, slice, broadcast_to, detach, contiguous) share storage with
// the tensor they view: freeing a view drops only its handle, never the viewed tensor's storage.
//
// A job's tensor work runs one host call at a time (gpu's in-place calls — backward, optimiser
// steps, frees — must not race with other use of the same tensors); each op still uses every
// core. No gpu panic reaches the guest: ops report errors, which become ErrBadPayload naming the
// op and the shapes.
//
// A Store is safe for concurrent use.
type Store struct {
	limit int64

	mu   sync.Mutex
	jobs map[string]*jobTensors
}

type jobTensors struct {
	mu      sync.Mutex
	arena   *gpu.Arena
	next    int64
	tensors map[int64]tensorEntry
	optims  map[int64]optimiser
}

type tensorEntry struct {
	t    *gpu.Tensor
	view bool // shares another tensor's storage: freeing it only drops the handle
}

type optimiser interface {
	Step() error
	ZeroGrad()
}

// Scope is what the calls sharing it (one call, or every call of one actor) made: tensors and
// optimisers, freed together by Store.Free when the scope ends. The zero Scope is empty and ready
// to use. The calls sharing a Scope are of one job, whose host calls the Store runs one at a time;
// Free must not run while they may still add to it.
type Scope struct {
	refs []ref
}

// ref is a tensor or optimiser a scope holds.
type ref struct {
	job string
	h   int64
}

// New returns an empty Store whose jobs each have limit bytes of tensors; limit <= 0 means
// DefaultBytesPerJob.
func New(limit int64) *Store {
	if limit <= 0 {
		limit = DefaultBytesPerJob
	}
	return &Store{limit: limit, jobs: map[string]*jobTensors{}}
}

// job returns job's tensors, made on first use.
func (s *Store) job(job string) *jobTensors {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[job]
	if j == nil {
		j = &jobTensors{arena: gpu.NewArena(s.limit), tensors: map[int64]tensorEntry{}, optims: map[int64]optimiser{}}
		s.jobs[job] = j
	}
	return j
}

// Free frees the tensors and optimisers of sc that still exist, and empties sc. A nil sc is
// empty.
func (s *Store) Free(sc *Scope) {
	if sc == nil {
		return
	}
	for _, r := range sc.refs {
		s.mu.Lock()
		j := s.jobs[r.job]
		s.mu.Unlock()
		if j == nil {
			continue
		}
		j.mu.Lock()
		j.drop(r.h)
		j.mu.Unlock()
	}
	sc.refs = nil
}

// drop frees handle h, a tensor or an optimiser, and reports whether it existed. The caller
// holds j.mu.
func (j *jobTensors) drop(h int64) bool {
	if e, ok := j.tensors[h]; ok {
		delete(j.tensors, h)
		if !e.view {
			e.t.Free()
		}
		return true
	}
	if _, ok := j.optims[h]; ok {
		delete(j.optims, h)
		return true
	}
	return false
}

// DropJob frees every tensor and optimiser of job. Handles of job are unknown after; the job's
// budget starts again from zero.
func (s *Store) DropJob(job string) {
	s.mu.Lock()
	j := s.jobs[job]
	delete(s.jobs, job)
	s.mu.Unlock()
	if j != nil {
		j.mu.Lock()
		j.tensors, j.optims = map[int64]tensorEntry{}, map[int64]optimiser{}
		j.arena.Free()
		j.mu.Unlock()
	}
}

// Stats reports the bytes of job's live tensors and the most they reached.
func (s *Store) Stats(job string) (used, peak int64) {
	s.mu.Lock()
	j := s.jobs[job]
	s.mu.Unlock()
	if j == nil {
		return 0, 0
	}
	return j.arena.Used(), j.arena.Peak()
}
