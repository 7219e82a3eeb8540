package bench

import (
	"context"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// raw is the baseline: the bench guest on a bare wazero runtime of its own, with no sandbox
// limits, pools, scheduling or objects, its exports called directly.
type raw struct {
	rt wazero.Runtime
	cm wazero.CompiledModule
}

func newRaw(ctx context.Context) (*raw, error) {
	rt := wazero.NewRuntime(ctx)
	cm, err := rt.CompileModule(ctx, benchWasm)
	if err != nil {
		rt.Close(ctx)
		return nil, fmt.Errorf("bench: compile the bench guest on raw wazero: %w", err)
	}
	return &raw{rt: rt, cm: cm}, nil
}

func (r *raw) close(ctx context.Context) error { return r.rt.Close(ctx) }

// rawInstance is one instance of the bench guest on the raw runtime. It runs one call at a time.
type rawInstance struct {
	mod   api.Module
	call  api.Function
	alloc api.Function
	stack [3]uint64
}

// instance instantiates the compiled guest: what "instantiate from compiled module" costs.
func (r *raw) instance(ctx context.Context) (*rawInstance, error) {
	// wazero seeds a math/rand source per instance unless given one, which costs more than the
	// rest of instantiating this guest; the host gives each instance a cheap one too.
	cfg := wazero.NewModuleConfig().WithName("").WithStartFunctions().WithRandSource(zeroes{})
	mod, err := r.rt.InstantiateModule(ctx, r.cm, cfg)
	if err != nil {
		return nil, fmt.Errorf("bench: instantiate on raw wazero: %w", err)
	}
	return &rawInstance{mod: mod, call: mod.ExportedFunction(abi.ExportCall), alloc: mod.ExportedFunction(abi.ExportAlloc)}, nil
}

// zeroes is a random source of zero bytes: the guest never reads it.
type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func (in *rawInstance) close(ctx context.Context) { in.mod.Close(ctx) }

// invoke is one call as the ABI makes it, done by hand: lumen_alloc and a copy of the input
// when there is one, lumen_call, a copy of the output.
func (in *rawInstance) invoke(ctx context.Context, fn int, input []byte) ([]byte, error) {
	var ptr uint32
	if len(input) > 0 {
		in.stack[0] = uint64(len(input))
		if err := in.alloc.CallWithStack(ctx, in.stack[:1]); err != nil {
			return nil, err
		}
		ptr = uint32(in.stack[0])
		if ptr == 0 || !in.mod.Memory().Write(ptr, input) {
			return nil, fmt.Errorf("bench: lumen_alloc(%d) gave no room", len(input))
		}
	}
	in.stack[0], in.stack[1], in.stack[2] = uint64(fn), uint64(ptr), uint64(len(input))
	if err := in.call.CallWithStack(ctx, in.stack[:]); err != nil {
		return nil, err
	}
	p, l := abi.Unpack(in.stack[0])
	b, ok := in.mod.Memory().Read(p, l)
	if !ok {
		return nil, fmt.Errorf("bench: lumen_call returned [%#x, +%d), outside memory", p, l)
	}
	return append([]byte(nil), b...), nil
}
