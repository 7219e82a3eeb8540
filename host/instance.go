package host

import (
	"context"
	crand "crypto/rand"
	"io"
	"math/rand/v2"
	"os"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/sys"

	"github.com/lumenflow/lumen/sdk/abi"
)

// instance is one instantiated guest. It runs one call at a time: whoever took it out of its pool
// (or holds its Instance) owns it until the call ends, so its fields need no lock, except the list
// links and cancel, which belong to Runtime.mu.
type instance struct {
	r       *Runtime
	m       *Module
	key     poolKey
	caps    capSet
	mod     api.Module   // the guest
	tramp   api.Module   // its trampoline
	run     api.Function // the trampoline's run(fn, len) -> i64
	cctx    *callCtx
	limiter *memoryLimiter
	roots   []*os.Root
	stdout  outWriter
	stderr  outWriter
	pooled  bool // returns to a pool after a healthy call; false for an Instance's
	dead    bool // trapped, hit a limit or was closed: never run again
	closed  atomic.Bool

	running bool
	st      callState
	stack   [3]uint64

	prev, next *instance
	list       *instList
}

// instanceSpec is what shapes a new instance.
type instanceSpec struct {
	m      *Module
	caps   capSet
	grants *Grants
	lim    Limits
	info   CallInfo
	key    poolKey
	pooled bool
	slot   slotState
}

// The fake clock a guest sees without abi.CapClock: wazero's choice, midnight UTC 2022-01-01,
// advancing 1 ms per reading so that loops waiting on time still end.
const fakeEpochNanos = 1640995200 * int64(time.Second)

func fakeWalltime() sys.Walltime {
	t := fakeEpochNanos - int64(time.Millisecond)
	return func() (int64, int32) {
		t += int64(time.Millisecond)
		return t / 1e9, int32(t % 1e9)
	}
}

func fakeNanotime() sys.Nanotime {
	t := -int64(time.Millisecond)
	return func() int64 {
		t += int64(time.Millisecond)
		return t
	}
}

// fakeRand is the deterministic source of random_get without abi.CapRandom.
// zeroReader reads zeros, for modules that never read randomness.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func fakeRand() io.Reader { return rand.NewChaCha8([32]byte{'l', 'u', 'm', 'e', 'n'}) }

// instantiate creates an instance for spec, running the module's _initialize if it has one, by
// deadline. The returned Result holds what initialization wrote; on failure the instance is
// already released.
func (r *Runtime) instantiate(ctx context.Context, now, deadline time.Time, spec *instanceSpec) (*instance, *Result, *abi.Error) {
	m := spec.m
	if m.Info.MemoryMinPages > spec.lim.MemoryPages {
		return nil, nil, limitErr(abi.LimitMemory, "module %s needs %d memory pages at start; the limit is %d pages",
			m.Digest, m.Info.MemoryMinPages, spec.lim.MemoryPages)
	}
	// Tables count against the memory limit too. wazero neither reports a table's size nor lets
	// the host refuse a table.grow, so the most the tables may take (memoryScan.tableEntries) is
	// reserved up front, and linear memory gets the rest: together they stay under the limit.
	limit := uint64(spec.lim.MemoryPages) * pageSize
	if need := uint64(m.Info.MemoryMinPages)*pageSize + m.tableBytes; need > limit {
		return nil, nil, limitErr(abi.LimitMemory, "module %s's tables may hold %d entries (%.1f MiB), which with its %d memory pages at start "+
			"is over the limit of %d pages (%d MiB)", m.Digest, m.tableBytes/tableEntryBytes, float64(m.tableBytes)/(1<<20),
			m.Info.MemoryMinPages, spec.lim.MemoryPages, limit>>20)
	}
	in := &instance{
		r:       r,
		m:       m,
		key:     spec.key,
		caps:    spec.caps,
		pooled:  spec.pooled,
		limiter: &memoryLimiter{limit: limit - m.tableBytes, tables: m.tableBytes},
	}
	in.stdout, in.stderr = outWriter{in}, outWriter{in}
	in.cctx = newCallCtx(&in.st)

	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().
		WithStdout(&in.stdout).WithStderr(&in.stderr)
	if m.reactor {
		cfg = cfg.WithStartFunctions("_initialize")
	}
	if spec.caps.has(bitClock) {
		cfg = cfg.WithSysWalltime().WithSysNanotime().WithNanosleep(in.sleep)
	} else {
		cfg = cfg.WithWalltime(fakeWalltime(), sys.ClockResolution(time.Microsecond)).
			WithNanotime(fakeNanotime(), sys.ClockResolution(time.Nanosecond)).
			WithNanosleep(func(int64) {})
	}
	if spec.caps.has(bitRandom) {
		cfg = cfg.WithRandSource(crand.Reader)
	} else {
		cfg = cfg.WithRandSource(fakeRand())
	}
	if spec.caps.has(bitEnv) {
		for _, k := range sortedEnv(spec.grants.Env) {
			cfg = cfg.WithEnv(k, spec.grants.Env[k])
		}
	}
	if spec.caps.has(bitFS) && len(spec.grants.Dirs) > 0 {
		fsc := wazero.NewFSConfig()
		for _, d := range spec.grants.Dirs {
			fsys, root, err := mountFS(d)
			if err != nil {
				in.close(ctx)
				return nil, nil, newErr(abi.KindBadInput, "dir grant %q: %v", d.GuestPath, err)
			}
			in.roots = append(in.roots, root)
			fsc = fsc.(sysfs.FSConfig).WithSysFSMount(fsys, d.GuestPath)
		}
		cfg = cfg.WithFSConfig(fsc)
	}

	st := in.begin(ctx, now, deadline, spec.info, spec.lim, spec.slot)
	mod, err := r.wz.InstantiateModule(experimental.WithMemoryAllocator(in.cctx, in.limiter), m.compiled, cfg)
	if err == nil {
		in.mod = mod
		if in.cctx.Err() != nil {
			err = ctxExit(in.cctx) // stopped in _initialize, just as it returned
		}
	}
	if err != nil {
		aerr := in.failure(err, st)
		aerr.Message = "instantiate: " + aerr.Message
		res, slot := in.finish()
		spec.slot = slot
		in.close(ctx)
		return nil, res, aerr
	}
	res, slot := in.finish()
	spec.slot = slot
	guest := func(name string) api.Module {
		if name == "guest" {
			return mod
		}
		return nil
	}
	// The trampoline reads no randomness; a fixed source spares wazero seeding one per instance.
	tramp, err := r.wz.InstantiateModule(experimental.WithImportResolver(ctx, guest), r.trampoline,
		wazero.NewModuleConfig().WithName("").WithStartFunctions().WithRandSource(zeroReader{}))
	if err != nil {
		in.close(ctx)
		return nil, res, newErr(abi.KindSystem, "instantiate the call trampoline: %v", err)
	}
	in.tramp, in.run = tramp, tramp.ExportedFunction("run")
	if in.dead {
		in.close(ctx)
		return nil, res, newErr(abi.KindCancelled, "instantiate: stopped as it returned")
	}
	return in, res, nil
}

func (in *instance) mem() api.Memory { return in.mod.Memory() }

// close releases the instance. It must not be running a call.
func (in *instance) close(ctx context.Context) {
	if in.closed.Swap(true) {
		return
	}
	in.dead = true
	if in.tramp != nil {
		_ = in.tramp.Close(ctx)
	}
	if in.mod != nil {
		_ = in.mod.Close(ctx)
	}
	in.cctx.timer.Stop()
	for _, r := range in.roots {
		_ = r.Close()
	}
}

// sleep is WASI's nanosleep with abi.CapClock: real time, cut short when the call ends.
func (in *instance) sleep(ns int64) {
	if ns <= 0 || !in.running {
		return
	}
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.st.cctx.Done():
	}
}

// outWriter is an instance's stdout or stderr: it appends to the log of the call running now.
type outWriter struct{ in *instance }

// Write implements io.Writer. Past the call's output limit it panics with errOutputLimit, which
// wazero turns into the call's error.
func (w *outWriter) Write(p []byte) (int, error) {
	if !w.in.running {
		return len(p), nil
	}
	w.in.st.appendLog(p)
	return len(p), nil
}
