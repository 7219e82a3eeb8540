package polyglot_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/plugins"
	"github.com/lumenflow/lumen/sdk/abi"
)

// BenchmarkSDK measures what each language's SDK costs, on the polyglot guests' no-op task (echo
// of an empty input), each Lumen figure beside a bare wazero baseline measured right after it in
// the same sub-benchmark, as many times:
//
//   - <lang>/call: one engine.Call of echo on a warm pooled instance (ns/op); raw-ns/op is the
//     guest's lumen_call export called directly on a bare wazero runtime, which still runs the
//     SDK's dispatch inside the guest but none of Lumen's host side.
//   - <lang>/instantiate: a new instance of the already compiled module, its _initialize run, and
//     its Close, through host.Runtime (ns/op); raw-ns/op is the same on bare wazero.
//
// x-raw is ns/op over raw-ns/op. The guests are built from source first, as the test does.
func BenchmarkSDK(b *testing.B) {
	ctx := context.Background()
	mods := wasm(b)
	eng, err := engine.Open(ctx, engine.Config{DataDir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close(ctx)
	hr, err := host.New(ctx, host.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer hr.Close(ctx)
	for _, g := range guests {
		m, err := eng.Modules().Add(ctx, mods[g.lang], plugins.AddOptions{Name: "poly-" + g.lang, Version: "1.0.0"})
		if err != nil {
			b.Fatal(err)
		}
		fn := -1
		for i, f := range m.Info.Manifest.Functions { // the guest's own order: lumen_call's index
			if f.Name == "echo" {
				fn = i
			}
		}
		if fn < 0 {
			b.Fatalf("%s: no echo in the manifest", g.lang)
		}
		raw := newBare(b, mods[g.lang])
		b.Run(g.lang+"/call", func(b *testing.B) {
			req := engine.CallRequest{Module: m.Digest, Function: "echo", Job: "bench"}
			if _, err := eng.Tasks().Call(ctx, req); err != nil { // warm the pool
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := eng.Tasks().Call(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
			inst := raw.instance(b)
			defer inst.Close(ctx)
			if out := bareEcho(b, inst, fn, "ping ✓"); out != "ping ✓" {
				b.Fatalf("echo on bare wazero = %q", out)
			}
			call, stack := inst.ExportedFunction(abi.ExportCall), make([]uint64, 3)
			baseline(b, func() {
				stack[0], stack[1], stack[2] = uint64(fn), 0, 0
				if err := call.CallWithStack(ctx, stack); err != nil {
					b.Fatal(err)
				}
			})
		})
		b.Run(g.lang+"/instantiate", func(b *testing.B) {
			hm, err := hr.Compile(ctx, mods[g.lang])
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				in, err := hr.NewInstance(ctx, host.InstanceSpec{Module: hm, Job: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				in.Close(ctx)
			}
			baseline(b, func() { raw.instance(b).Close(ctx) })
			b.ReportMetric(float64(len(mods[g.lang])), "module-bytes")
		})
	}
}

// baseline runs f as many times as the benchmark's loop ran and reports its time per run as
// raw-ns/op, and ns/op over it as x-raw.
func baseline(b *testing.B, f func()) {
	n := b.N
	f() // once before timing, as the loop's first runs warmed its own path
	start := time.Now()
	for range n {
		f()
	}
	raw := float64(time.Since(start).Nanoseconds()) / float64(n)
	b.ReportMetric(raw, "raw-ns/op")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n)/raw, "x-raw")
}

// bare is a guest compiled on a bare wazero runtime: WASI, and a stub for each lumen host
// function the guest imports (none of them is called by echo or at initialization), no limits.
type bare struct {
	rt wazero.Runtime
	cm wazero.CompiledModule
}

func newBare(b *testing.B, wasm []byte) *bare {
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	b.Cleanup(func() { rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	cm, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	hb := rt.NewHostModuleBuilder(abi.HostModule)
	for _, f := range cm.ImportedFunctions() {
		if mod, name, _ := f.Import(); mod == abi.HostModule {
			results := len(f.ResultTypes())
			stub := api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
				clear(stack[:results])
			})
			hb.NewFunctionBuilder().WithGoModuleFunction(stub, f.ParamTypes(), f.ResultTypes()).Export(name)
		}
	}
	if _, err := hb.Instantiate(ctx); err != nil {
		b.Fatal(err)
	}
	return &bare{rt: rt, cm: cm}
}

// instance instantiates the compiled guest and runs its _initialize, as the host does.
func (g *bare) instance(b *testing.B) api.Module {
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize").WithRandSource(zeroes{})
	mod, err := g.rt.InstantiateModule(context.Background(), g.cm, cfg)
	if err != nil {
		b.Fatal(fmt.Errorf("instantiate on bare wazero: %w", err))
	}
	return mod
}

// bareEcho calls echo on a bare instance as the host does, the input copied into a buffer of
// lumen_alloc's, and returns the output: the check that the baseline does the same work.
func bareEcho(b *testing.B, mod api.Module, fn int, in string) string {
	ctx := context.Background()
	res, err := mod.ExportedFunction(abi.ExportAlloc).Call(ctx, uint64(len(in)))
	if err != nil || !mod.Memory().WriteString(uint32(res[0]), in) {
		b.Fatalf("lumen_alloc(%d) on bare wazero: %v", len(in), err)
	}
	res, err = mod.ExportedFunction(abi.ExportCall).Call(ctx, uint64(fn), res[0], uint64(len(in)))
	if err != nil {
		b.Fatal(err)
	}
	out, ok := mod.Memory().Read(abi.Unpack(res[0]))
	if !ok {
		b.Fatal("lumen_call's output is outside memory")
	}
	return string(out)
}

// zeroes is a random source of zero bytes, as cheap as the host's: wazero otherwise seeds a
// math/rand source per instance, which would dominate a small guest's instantiation.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }
