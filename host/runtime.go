package host

import (
	"context"
	_ "embed"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Runtime compiles and runs guest modules. It is safe for concurrent use; Close it when done.
type Runtime struct {
	cfg   Config
	wz    wazero.Runtime
	cache wazero.CompilationCache // nil without DataDir
	// trampoline is trampoline.wasm, compiled: one per instance calls lumen_alloc and lumen_call.
	trampoline wazero.CompiledModule
	sem        chan struct{} // one token per running call
	done       chan struct{} // closed by Close

	mu        sync.Mutex
	closed    bool
	released  bool                    // Close has released the instances and wazero
	active    int                     // calls and instantiations in flight
	drained   chan struct{}           // closed when closed && active == 0
	modules   map[string]*moduleEntry // the compile cache, by digest
	compiled  moduleList              // the cache's compiled entries, most recently used first
	cached    int64                   // bytes of the modules in compiled
	codeFreed atomic.Int64            // compiled modules closed since nothing held them; for tests
	pools     map[poolKey]*pool       // idle instances by what shapes them
	lru       instList                // every idle pooled instance, most recently used first
	busy      instList                // instances running a call
	dedicated map[*Instance]struct{}  // open Instances, closed with the Runtime
}

// poolKey is what makes two instances interchangeable: the module, the job (instances are never
// shared between jobs), the effective grants and the memory limit.
type poolKey struct {
	m      *Module
	job    string
	grants string
	pages  uint32
}

type pool struct{ idle []*instance } // oldest first

// New returns a Runtime configured by cfg.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	rc := wazero.NewRuntimeConfig().WithCloseOnContextDone(true)
	r := &Runtime{
		cfg:       cfg,
		sem:       make(chan struct{}, cfg.MaxConcurrentCalls),
		done:      make(chan struct{}),
		drained:   make(chan struct{}),
		modules:   map[string]*moduleEntry{},
		pools:     map[poolKey]*pool{},
		dedicated: map[*Instance]struct{}{},
	}
	if cfg.DataDir != "" {
		dir := filepath.Join(cfg.DataDir, "compile-cache")
		if r.cache, err = wazero.NewCompilationCacheWithDir(dir); err != nil {
			return nil, fmt.Errorf("host: compilation cache in %s: %w", dir, err)
		}
		rc = rc.WithCompilationCache(r.cache)
	}
	r.wz = wazero.NewRuntimeWithConfig(ctx, rc)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.wz); err != nil {
		r.closeWazero(ctx)
		return nil, fmt.Errorf("host: instantiate WASI: %w", err)
	}
	if err := r.instantiateHostModule(ctx); err != nil {
		r.closeWazero(ctx)
		return nil, fmt.Errorf("host: instantiate the %q module: %w", abi.HostModule, err)
	}
	if err := r.compileTrampoline(ctx); err != nil {
		r.closeWazero(ctx)
		return nil, fmt.Errorf("host: the call trampoline: %w", err)
	}
	return r, nil
}

//go:embed trampoline.wasm
var trampolineWasm []byte

// internalModule is the host module the trampoline imports from; guests cannot import it, as
// abi.CheckShape allows only "lumen" and WASI.
const internalModule = "lumen_internal"

func (r *Runtime) compileTrampoline(ctx context.Context) error {
	i32 := api.ValueTypeI32
	_, err := r.wz.NewHostModuleBuilder(internalModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostInput), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		Export("input").Instantiate(ctx)
	if err != nil {
		return err
	}
	r.trampoline, err = r.wz.CompileModule(ctx, trampolineWasm)
	return err
}

func (r *Runtime) closeWazero(ctx context.Context) error {
	err := r.wz.Close(ctx)
	if r.cache != nil {
		if cerr := r.cache.Close(ctx); err == nil {
			err = cerr
		}
	}
	return err
}

// Close stops the Runtime: new calls fail with ErrClosed, running calls are cancelled (they fail
// with KindCancelled), and once they have returned every instance and compiled module is
// released. If ctx ends first Close returns its error and leaves the sandboxes to the calls still
// running; calling Close again waits again.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.done)
		if r.active == 0 {
			close(r.drained)
		}
	}
	for in := r.busy.head; in != nil; in = in.next {
		in.cctx.stop(stopCancel)
	}
	r.mu.Unlock()

	select {
	case <-r.drained:
	case <-ctx.Done():
		return fmt.Errorf("host: close: calls still running: %w", ctx.Err())
	}

	r.mu.Lock()
	if r.released {
		r.mu.Unlock()
		return nil
	}
	r.released = true
	var victims []*instance
	for in := r.lru.head; in != nil; in = in.next {
		victims = append(victims, in)
	}
	r.lru = instList{}
	r.pools = map[poolKey]*pool{}
	var instances []*Instance
	for i := range r.dedicated {
		instances = append(instances, i)
	}
	r.dedicated = map[*Instance]struct{}{}
	r.mu.Unlock()
	for _, in := range victims {
		in.close(ctx)
	}
	for _, i := range instances {
		i.closeNow(ctx)
	}
	return r.closeWazero(ctx)
}

// acquire takes a concurrency slot, waiting while ctx allows, and reports whether it waited.
func (r *Runtime) acquire(ctx context.Context) (waited bool, err error) {
	select {
	case r.sem <- struct{}{}:
		return false, nil
	default:
	}
	select {
	case r.sem <- struct{}{}:
		return true, nil
	case <-ctx.Done():
		return true, ctx.Err()
	case <-r.done:
		return true, ErrClosed
	}
}

func (r *Runtime) release() { <-r.sem }

// begin registers a call starting on the Runtime and, when pooled, takes an idle instance of
// key's pool if there is one. It fails once the Runtime is closed.
func (r *Runtime) begin(key poolKey, pooled bool) (*instance, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, closedErr()
	}
	r.active++
	if key.m != nil {
		r.touchLocked(key.m)
	}
	if !pooled {
		return nil, nil
	}
	p := r.pools[key]
	if p == nil || len(p.idle) == 0 {
		return nil, nil
	}
	in := p.idle[len(p.idle)-1]
	p.idle[len(p.idle)-1] = nil
	p.idle = p.idle[:len(p.idle)-1]
	r.lru.remove(in)
	r.busy.pushFront(in)
	return in, nil
}

// markBusy records an instance as running a call, so that Close can stop it.
func (r *Runtime) markBusy(in *instance) {
	r.mu.Lock()
	r.busy.pushFront(in)
	closed := r.closed
	r.mu.Unlock()
	if closed {
		in.cctx.stop(stopCancel)
	}
}

// end unregisters a call. A healthy pooled instance goes back to its pool; a dead one, or one
// evicted to keep MaxIdleInstances, is closed.
func (r *Runtime) end(ctx context.Context, in *instance) {
	var victims []*instance
	r.mu.Lock()
	if in != nil {
		if in.list == &r.busy {
			r.busy.remove(in)
		}
		switch {
		case !in.pooled:
			// A dedicated instance belongs to its Instance.
		case in.dead || r.closed || r.cfg.MaxIdleInstances == 0 || uint64(in.mem().Size())+in.limiter.tables > maxIdleMemory ||
			!r.cachedLocked(in.m): // its module left the compile cache: do not hold it here
			victims = append(victims, in)
		default:
			p := r.pools[in.key]
			if p == nil {
				p = &pool{}
				r.pools[in.key] = p
			}
			p.idle = append(p.idle, in)
			r.lru.pushFront(in)
			for r.lru.n > r.cfg.MaxIdleInstances {
				victims = append(victims, r.evictLocked())
			}
		}
	}
	r.active--
	if r.closed && r.active == 0 {
		select {
		case <-r.drained:
		default:
			close(r.drained)
		}
	}
	r.mu.Unlock()
	for _, v := range victims {
		v.close(ctx)
	}
}

// cachedLocked reports whether m is the compile cache's module of its digest.
func (r *Runtime) cachedLocked(m *Module) bool {
	e := r.modules[m.Digest]
	return e != nil && e.listed && e.m == m // listed first: see touchLocked
}

// evictLocked removes the least recently used idle instance from its pool and returns it.
func (r *Runtime) evictLocked() *instance {
	in := r.lru.tail
	r.lru.remove(in)
	p := r.pools[in.key]
	for i, x := range p.idle {
		if x == in {
			copy(p.idle[i:], p.idle[i+1:])
			p.idle[len(p.idle)-1] = nil
			p.idle = p.idle[:len(p.idle)-1]
			break
		}
	}
	if len(p.idle) == 0 {
		delete(r.pools, in.key)
	}
	return in
}

// Evict closes the idle instances of job, for when the job has ended. Running calls are not
// affected; their instances are pooled again when they return, so call Evict after the job's
// last call.
func (r *Runtime) Evict(ctx context.Context, job string) {
	var victims []*instance
	r.mu.Lock()
	for key, p := range r.pools {
		if key.job != job {
			continue
		}
		for _, in := range p.idle {
			r.lru.remove(in)
			victims = append(victims, in)
		}
		delete(r.pools, key)
	}
	r.mu.Unlock()
	for _, in := range victims {
		in.close(ctx)
	}
}

// Stats is a snapshot of a Runtime's occupancy.
type Stats struct {
	Modules       int // compiled modules held
	IdleInstances int // warm instances in pools
	Running       int // calls and instantiations in flight
	Instances     int // open dedicated Instances
}

// Stats returns a snapshot of the Runtime's occupancy. It is safe for concurrent use.
func (r *Runtime) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Modules: len(r.modules), IdleInstances: r.lru.n, Running: r.active, Instances: len(r.dedicated)}
}

// instList is an intrusive doubly linked list of instances; an instance is in at most one.
type instList struct {
	head, tail *instance
	n          int
}

func (l *instList) pushFront(in *instance) {
	in.prev, in.next, in.list = nil, l.head, l
	if l.head != nil {
		l.head.prev = in
	} else {
		l.tail = in
	}
	l.head = in
	l.n++
}

func (l *instList) remove(in *instance) {
	if in.list != l {
		return
	}
	if in.prev != nil {
		in.prev.next = in.next
	} else {
		l.head = in.next
	}
	if in.next != nil {
		in.next.prev = in.prev
	} else {
		l.tail = in.prev
	}
	in.prev, in.next, in.list = nil, nil, nil
	l.n--
}
