package host

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Module is a compiled, validated guest module. It belongs to the Runtime that compiled it and is
// safe for concurrent use. Digest and Info must not be modified.
type Module struct {
	Digest string          // "sha256:<hex>" of the module's bytes
	Info   *abi.ModuleInfo // exports, imports, memory bounds and manifest

	r         *Runtime
	compiled  wazero.CompiledModule
	reactor   bool             // exports _initialize, run once per instance
	requested capSet           // capabilities the manifest requests, with base
	required  capSet           // capabilities its lumen imports need, with base
	fn        map[string]int32 // manifest function name -> lumen_call index
	// tableBytes is the most memory the module's tables may ever take (tableEntryBytes per
	// entry): what instances reserve out of their memory limit. See memoryScan.tableEntries.
	tableBytes uint64
}

// moduleEntry is one module of the compile cache (Runtime.modules). Its list fields belong to
// Runtime.mu; done, m and err are set once by the compiling caller.
type moduleEntry struct {
	done chan struct{} // closed when m or err is set
	m    *Module
	err  error

	digest     string
	size       int64 // bytes of the module
	prev, next *moduleEntry
	listed     bool // in Runtime.compiled
}

// moduleList is the compile cache's recency list.
type moduleList struct{ head, tail *moduleEntry }

func (l *moduleList) pushFront(e *moduleEntry) {
	e.prev, e.next, e.listed = nil, l.head, true
	if l.head != nil {
		l.head.prev = e
	} else {
		l.tail = e
	}
	l.head = e
}

func (l *moduleList) remove(e *moduleEntry) {
	if !e.listed {
		return
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next, e.listed = nil, nil, false
}

// touchLocked marks m as just used, if it is the cache's module of its digest. The caller holds
// r.mu.
func (r *Runtime) touchLocked(m *Module) {
	// listed first: an entry still compiling has its m written without the lock.
	if e := r.modules[m.Digest]; e != nil && e.listed && e.m == m && r.compiled.head != e {
		r.compiled.remove(e)
		r.compiled.pushFront(e)
	}
}

// cacheLocked adds a compiled entry to the cache and drops the least recently used ones past
// Config.MaxCompiledBytes, never e itself. It returns the idle instances of the dropped modules,
// for the caller to close outside the lock. The caller holds r.mu.
func (r *Runtime) cacheLocked(e *moduleEntry) []*instance {
	r.compiled.pushFront(e)
	r.cached += e.size
	var victims []*instance
	for r.cached > r.cfg.MaxCompiledBytes && r.compiled.tail != e {
		victims = append(victims, r.dropLocked(r.compiled.tail)...)
	}
	return victims
}

// dropLocked removes a compiled entry from the cache, with its module's idle instances, which
// it returns. A Module still held elsewhere keeps working; its compiled code is released when
// nothing holds it (see Compile). The caller holds r.mu.
func (r *Runtime) dropLocked(e *moduleEntry) []*instance {
	r.compiled.remove(e)
	r.cached -= e.size
	delete(r.modules, e.digest)
	var victims []*instance
	for key, p := range r.pools {
		if key.m != e.m {
			continue
		}
		for _, in := range p.idle {
			r.lru.remove(in)
			victims = append(victims, in)
		}
		delete(r.pools, key)
	}
	return victims
}

// Forget drops the module of digest from the compile cache, with its idle instances: for a
// module deleted, or refused after it compiled (by a registry's own checks, say). A Module
// still held elsewhere keeps working; its compiled code is released once nothing holds it. A
// later Compile of the same bytes compiles them again (from the on-disk cache with DataDir).
// Forget is safe for concurrent use; it does nothing for a digest not cached.
func (r *Runtime) Forget(ctx context.Context, digest string) {
	r.mu.Lock()
	var victims []*instance
	if e := r.modules[digest]; e != nil && e.listed {
		victims = r.dropLocked(e)
	}
	r.mu.Unlock()
	for _, in := range victims {
		in.close(ctx)
	}
}

// Digest returns "sha256:<hex>" of wasm, the name a module goes by.
func Digest(wasm []byte) string {
	sum := sha256.Sum256(wasm)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// Compile compiles and validates a module, or returns the one already compiled from the same
// bytes. It checks the module against ABI v1 (abi.CheckShape) before running any of its code, then
// instantiates it once, with no grants, the default limits and a short deadline, to read its
// manifest (abi.DecodeManifest) and check its imports against the capabilities the manifest
// requests (abi.CheckCapabilities). A refused module gives an *abi.Error of KindBadInput whose
// message names the problem.
//
// Compiled code is cached in memory by digest, up to Config.MaxCompiledBytes (least recently
// used out first; see Forget) and, with Config.DataDir, on disk, so a restarted Runtime skips
// the compiler. A refused module is not kept. Compile is safe for
// concurrent use; concurrent compiles of the same bytes share one compilation. It runs outside
// the concurrency cap (an engine may compile from inside a host function that holds a slot), and
// compiling cannot be cancelled: Config.MaxModuleBytes bounds its cost. wasm is not retained.
func (r *Runtime) Compile(ctx context.Context, wasm []byte) (*Module, error) {
	if int64(len(wasm)) > r.cfg.MaxModuleBytes {
		return nil, newErr(abi.KindBadInput, "module refused: %d bytes, over the %d-byte limit", len(wasm), r.cfg.MaxModuleBytes)
	}
	digest := Digest(wasm)
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, closedErr()
	}
	e, ok := r.modules[digest]
	if !ok {
		e = &moduleEntry{done: make(chan struct{}), digest: digest, size: int64(len(wasm))}
		r.modules[digest] = e
		r.active++
	}
	r.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			if e.m != nil {
				r.mu.Lock()
				r.touchLocked(e.m)
				r.mu.Unlock()
			}
			return e.m, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}

	// The compiled module is shared by every caller waiting for it and kept: one caller going
	// away (its context cancelled) must not fail the others, so the compile does not follow the
	// caller's cancellation. Its length is bounded by the module size cap and the manifest's
	// timeout.
	e.m, e.err = r.compile(context.WithoutCancel(ctx), digest, wasm)
	close(e.done)
	var victims []*instance
	r.mu.Lock()
	switch {
	case e.err != nil:
		delete(r.modules, digest)
	case r.modules[digest] == e: // not forgotten meanwhile
		victims = r.cacheLocked(e)
	}
	r.mu.Unlock()
	for _, in := range victims {
		in.close(ctx)
	}
	r.end(ctx, nil)
	return e.m, e.err
}

// Inspect compiles wasm like Compile and returns what it found. The module registry calls it to
// validate uploads.
func (r *Runtime) Inspect(ctx context.Context, wasm []byte) (*abi.ModuleInfo, error) {
	m, err := r.Compile(ctx, wasm)
	if err != nil {
		return nil, err
	}
	return m.Info, nil
}

func (r *Runtime) compile(ctx context.Context, digest string, wasm []byte) (*Module, error) {
	refuse := func(format string, args ...any) error {
		return newErr(abi.KindBadInput, "module %s refused: %s", digest, fmt.Sprintf(format, args...))
	}
	if len(wasm) < 8 || !bytes.Equal(wasm[:4], []byte("\x00asm")) {
		return nil, refuse("not a WebAssembly module (no \\0asm header)")
	}
	if !bytes.Equal(wasm[4:8], []byte{1, 0, 0, 0}) {
		return nil, refuse("WebAssembly binary version %x is not supported (want 1)", wasm[4:8])
	}
	mem, err := checkModule(wasm) // before wazero: see checkModule
	if err != nil {
		return nil, refuse("invalid WebAssembly: %v", err)
	}
	cm, err := r.wz.CompileModule(ctx, wasm)
	if err != nil {
		return nil, refuse("invalid WebAssembly: %v", err)
	}
	m := &Module{Digest: digest, r: r, compiled: cm}
	ok := false
	defer func() {
		if !ok {
			_ = cm.Close(context.Background())
			return
		}
		// The compiled code goes when nothing holds the Module any more: not the cache (it
		// may have dropped it), nor a caller, nor an instance (each holds its Module).
		runtime.AddCleanup(m, func(cm wazero.CompiledModule) {
			_ = cm.Close(context.Background())
			r.codeFreed.Add(1)
		}, cm)
	}()
	m.Info = moduleInfo(cm, mem)
	if err := abi.CheckShape(m.Info); err != nil {
		return nil, refuse("%s", strings.TrimPrefix(err.Error(), "module refused: "))
	}
	if mem.imported {
		return nil, refuse("it imports its memory; a Lumen module must define its own")
	}
	if !mem.defined {
		return nil, refuse("it has no memory")
	}
	if mem.importsTables {
		return nil, refuse("it imports a table; a Lumen module must define its own")
	}
	entries, err := mem.tableEntries()
	if err != nil {
		return nil, refuse("%v", err)
	}
	m.tableBytes = entries * tableEntryBytes
	if m.tableBytes > MaxMemoryPages*pageSize {
		return nil, refuse("its tables may hold %d entries (%d MiB), more than any memory limit (%d MiB)",
			entries, m.tableBytes>>20, uint64(MaxMemoryPages*pageSize)>>20)
	}
	exports := cm.ExportedFunctions()
	if _, ok := exports["_start"]; ok {
		if _, ok := exports["_initialize"]; !ok {
			return nil, refuse("it is a WASI command (exports _start, no _initialize); build it as a reactor " +
				"(Go: GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared)")
		}
	}
	if init, ok := exports["_initialize"]; ok {
		if len(init.ParamTypes()) != 0 || len(init.ResultTypes()) != 0 {
			return nil, refuse("export \"_initialize\" must have type () -> ()")
		}
		m.reactor = true
	}
	m.required = bitBase
	for _, c := range abi.RequiredCapabilities(m.Info) {
		m.required |= capBits[c]
	}

	manifest, err := r.readManifest(ctx, m)
	if err != nil {
		return nil, refuse("%v", err)
	}
	if err := abi.CheckCapabilities(m.Info, manifest); err != nil {
		return nil, refuse("%s", strings.TrimPrefix(err.Error(), "module refused: "))
	}
	m.Info.Manifest = manifest
	m.requested, _ = capsOf(manifest.Capabilities) // validated by DecodeManifest
	m.requested |= bitBase
	m.fn = make(map[string]int32, len(manifest.Functions))
	for i, f := range manifest.Functions {
		m.fn[f.Name] = int32(i)
	}
	ok = true
	return m, nil
}

// readManifest instantiates m with no grants and the default limits and calls lumen_manifest.
func (r *Runtime) readManifest(ctx context.Context, m *Module) (*abi.Manifest, error) {
	lim := r.cfg.Defaults
	if lim.Timeout > manifestTimeout {
		lim.Timeout = manifestTimeout
	}
	if m.Info.MemoryMinPages > lim.MemoryPages {
		// Let the manifest be read; a call with a lower limit fails with LimitMemory.
		lim.MemoryPages = m.Info.MemoryMinPages
	}
	now := time.Now()
	deadline := now.Add(lim.Timeout)
	spec := &instanceSpec{m: m, caps: bitBase, lim: lim, info: CallInfo{Module: m.Digest, Function: abi.ExportManifest}}
	in, res, aerr := r.instantiate(ctx, now, deadline, spec)
	if aerr != nil {
		return nil, fmt.Errorf("%s%s", aerr.Message, logNote(res))
	}
	r.markBusy(in) // so that Close stops it
	defer func() {
		r.mu.Lock()
		r.busy.remove(in)
		r.mu.Unlock()
		in.close(ctx)
	}()
	fn := in.mod.ExportedFunction(abi.ExportManifest)
	st := in.begin(ctx, time.Now(), deadline, spec.info, lim, slotNone)
	stack := []uint64{0}
	err := fn.CallWithStack(in.cctx, stack)
	if err == nil && in.cctx.Err() != nil {
		err = ctxExit(in.cctx)
	}
	res, _ = in.finish()
	if err != nil {
		return nil, fmt.Errorf("%s failed: %s%s", abi.ExportManifest, in.failure(err, st).Message, logNote(res))
	}
	ptr, n := abi.Unpack(stack[0])
	if n > abi.MaxManifestBytes {
		return nil, fmt.Errorf("%s returned %d bytes, over the %d-byte limit", abi.ExportManifest, n, abi.MaxManifestBytes)
	}
	b, ok := in.mem().Read(ptr, n)
	if !ok {
		return nil, fmt.Errorf("%s returned bytes [%#x, +%d) out of bounds of its %d-byte memory", abi.ExportManifest, ptr, n, in.mem().Size())
	}
	manifest, err := abi.DecodeManifest(bytes.Clone(b))
	if err != nil {
		return nil, err
	}
	return manifest, nil
}

// logNote quotes the start of what an instantiation or call wrote, to help explain a failure.
func logNote(res *Result) string {
	if res == nil || len(res.Log) == 0 {
		return ""
	}
	return fmt.Sprintf(" (its output: %q)", truncate(string(res.Log), 512))
}

func sigOf(d api.FunctionDefinition) abi.Signature {
	var s abi.Signature
	for _, t := range d.ParamTypes() {
		s.Params = append(s.Params, abi.ValType(t))
	}
	for _, t := range d.ResultTypes() {
		s.Results = append(s.Results, abi.ValType(t))
	}
	return s
}

func moduleInfo(cm wazero.CompiledModule, mem memoryScan) *abi.ModuleInfo {
	info := &abi.ModuleInfo{MemoryMinPages: mem.min, MemoryMaxPages: mem.max}
	for name, d := range cm.ExportedFunctions() {
		info.Exports = append(info.Exports, abi.Export{Name: name, Sig: sigOf(d)})
	}
	sort.Slice(info.Exports, func(i, j int) bool { return info.Exports[i].Name < info.Exports[j].Name })
	for _, d := range cm.ImportedFunctions() {
		mod, name, _ := d.Import()
		info.Imports = append(info.Imports, abi.Import{Module: mod, Name: name, Sig: sigOf(d)})
	}
	return info
}
