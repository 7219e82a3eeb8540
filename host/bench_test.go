package host

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/lumenflow/lumen/sdk/abi"
)

var smallJSON = []byte(`{"a":40,"b":2}`)

// rawEcho instantiates good.wasm on a bare wazero runtime, with stub lumen functions, and returns
// its lumen_call with smallJSON already in memory.
func rawEcho(b *testing.B, closeOnDone bool) (api.Function, []uint64) {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
	b.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	stub := api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 0 })
	hb := rt.NewHostModuleBuilder(abi.HostModule)
	hb.NewFunctionBuilder().WithGoModuleFunction(stub, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export(abi.FnLog)
	hb.NewFunctionBuilder().WithGoModuleFunction(stub, []api.ValueType{api.ValueTypeI32, api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).Export(abi.FnError)
	if _, err := hb.Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	mod, err := rt.InstantiateWithConfig(ctx, testWasm(b, "good"), wazero.NewModuleConfig().WithName(""))
	if err != nil {
		b.Fatal(err)
	}
	res, err := mod.ExportedFunction(abi.ExportAlloc).Call(ctx, uint64(len(smallJSON)))
	if err != nil {
		b.Fatal(err)
	}
	ptr := uint32(res[0])
	mod.Memory().Write(ptr, smallJSON)
	return mod.ExportedFunction(abi.ExportCall), []uint64{0, uint64(ptr), uint64(len(smallJSON))}
}

// BenchmarkRawWazeroCall is the baseline: lumen_call of good.wasm's echo on a bare wazero
// runtime, input already in memory, no limits.
func BenchmarkRawWazeroCall(b *testing.B) {
	fn, args := rawEcho(b, false)
	stack := make([]uint64, 3)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		copy(stack, args)
		if err := fn.CallWithStack(ctx, stack); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRawWazeroCall_CloseOnDone is the baseline with what a deadline costs in wazero:
// WithCloseOnContextDone and a context with a deadline (wazero watches it from a goroutine).
func BenchmarkRawWazeroCall_CloseOnDone(b *testing.B) {
	fn, args := rawEcho(b, true)
	stack := make([]uint64, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	b.ReportAllocs()
	for b.Loop() {
		copy(stack, args)
		if err := fn.CallWithStack(ctx, stack); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCall(b *testing.B, r *Runtime, req CallRequest, want string) {
	if res, err := r.Call(context.Background(), req); err != nil || string(res.Output) != want {
		b.Fatalf("%v %v", res, err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCall_Pooled_WAT is Runtime.Call of good.wasm's add({"a":40,"b":2}) on a pooled instance.
func BenchmarkCall_Pooled_WAT(b *testing.B) {
	r := newTestRuntime(b, Config{})
	m := mustCompile(b, r, "good")
	benchCall(b, r, CallRequest{Module: m, Function: "add", Input: smallJSON, Job: "bench"}, "42")
}

// BenchmarkCall_Pooled_WAT_Parallel is the same from GOMAXPROCS goroutines.
func BenchmarkCall_Pooled_WAT_Parallel(b *testing.B) {
	r := newTestRuntime(b, Config{})
	m := mustCompile(b, r, "good")
	req := CallRequest{Module: m, Function: "add", Input: smallJSON, Job: "bench"}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := r.Call(context.Background(), req); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCall_Pooled_Go is Runtime.Call of the Go guest's add({"a":40,"b":2}) on a pooled instance.
func BenchmarkCall_Pooled_Go(b *testing.B) {
	needGoGuest(b)
	r := newTestRuntime(b, Config{DataDir: goBuild.dir})
	m, err := r.Compile(context.Background(), goBuild.wasm)
	if err != nil {
		b.Fatal(err)
	}
	benchCall(b, r, CallRequest{Module: m, Function: "add", Input: smallJSON, Job: "bench", Grants: goGrants}, "42")
}

func benchInstantiate(b *testing.B, r *Runtime, m *Module) {
	ctx := context.Background()
	spec := &instanceSpec{m: m, caps: bitBase | bitTasks | bitObjects, lim: r.cfg.Defaults, grants: &Grants{}}
	b.ReportAllocs()
	for b.Loop() {
		in, _, err := r.instantiate(ctx, time.Now(), time.Now().Add(time.Minute), spec)
		if err != nil {
			b.Fatal(err)
		}
		in.close(ctx)
	}
}

// BenchmarkInstantiate_WAT instantiates good.wasm from its compiled module.
func BenchmarkInstantiate_WAT(b *testing.B) {
	r := newTestRuntime(b, Config{})
	benchInstantiate(b, r, mustCompile(b, r, "good"))
}

// BenchmarkInstantiate_Go instantiates the Go guest (running its _initialize) from its compiled module.
func BenchmarkInstantiate_Go(b *testing.B) {
	needGoGuest(b)
	r := newTestRuntime(b, Config{DataDir: goBuild.dir})
	m, err := r.Compile(context.Background(), goBuild.wasm)
	if err != nil {
		b.Fatal(err)
	}
	benchInstantiate(b, r, m)
}

func benchCompile(b *testing.B, dataDir func() string) {
	wasm := bigWasm(b)
	ctx := context.Background()
	for b.Loop() {
		r, err := New(ctx, Config{DataDir: dataDir()})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Compile(ctx, wasm); err != nil {
			b.Fatal(err)
		}
		r.Close(ctx)
	}
	b.ReportMetric(float64(len(wasm)), "module-bytes")
}

// BenchmarkCompile_Cold compiles the Go guest (or hostile.wasm without Go) on a new Runtime with
// an empty cache.
func BenchmarkCompile_Cold(b *testing.B) {
	benchCompile(b, func() string { return "" })
}

// BenchmarkCompile_DiskCache compiles it on a new Runtime whose DataDir holds it already: what a
// restarted worker pays.
func BenchmarkCompile_DiskCache(b *testing.B) {
	dir := b.TempDir()
	r, err := New(context.Background(), Config{DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := r.Compile(context.Background(), bigWasm(b)); err != nil {
		b.Fatal(err)
	}
	r.Close(context.Background())
	b.ResetTimer()
	benchCompile(b, func() string { return dir })
	_ = os.RemoveAll(dir)
}

// BenchmarkCall_Pooled_Go_Echo is the Go guest's bytes echo: the call path without the guest's
// JSON decoding and encoding.
func BenchmarkCall_Pooled_Go_Echo(b *testing.B) {
	needGoGuest(b)
	r := newTestRuntime(b, Config{DataDir: goBuild.dir})
	m, err := r.Compile(context.Background(), goBuild.wasm)
	if err != nil {
		b.Fatal(err)
	}
	benchCall(b, r, CallRequest{Module: m, Function: "echo", Input: smallJSON, Job: "bench", Grants: goGrants}, string(smallJSON))
}

// loopFunc instantiates loop.wasm on a bare wazero runtime and returns its count function.
func loopFunc(b *testing.B, closeOnDone bool) api.Function {
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
	b.Cleanup(func() { rt.Close(ctx) })
	mod, err := rt.Instantiate(ctx, testWasm(b, "loop"))
	if err != nil {
		b.Fatal(err)
	}
	return mod.ExportedFunction("count")
}

// loopTurns is how many turns one call of count makes.
const loopTurns = 1_000_000

// BenchmarkGuestLoop is compute-bound guest code without the deadline check: a counting loop of
// loopTurns turns. Lumen cannot run guests this way (a loop could not be stopped); it is the
// baseline of BenchmarkGuestLoop_DeadlineChecked.
func BenchmarkGuestLoop(b *testing.B) {
	fn := loopFunc(b, false)
	ctx := context.Background()
	for b.Loop() {
		if _, err := fn.Call(ctx, loopTurns); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/loopTurns, "ns/turn")
}

// BenchmarkGuestLoop_DeadlineChecked is the same loop as Lumen runs every guest: with
// WithCloseOnContextDone, under which wazero v1.12 leaves compiled code for Go at every loop
// back-edge to see whether the call was stopped.
func BenchmarkGuestLoop_DeadlineChecked(b *testing.B) {
	fn := loopFunc(b, true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	for b.Loop() {
		if _, err := fn.Call(ctx, loopTurns); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/loopTurns, "ns/turn")
}
