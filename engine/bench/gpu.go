package bench

import (
	"fmt"

	"github.com/lumenflow/lumen/gpu"
)

// UnitGFLOPS is the unit of the matmul figures.
const UnitGFLOPS = "GFLOP/s"

// The gpu section: float32 square matmul on one core and on all, each beside OpenBLAS measured
// in the same run when it is installed, and a transformer block's forward and backward pass.
// The machine's peak is stated in the notes: 2 FMA units × 8 float32 lanes × 2 flops per cycle
// per core on an AVX2 machine (about 98 GFLOP/s per core at 3 GHz), twice that with AVX-512.

func matmulFigure(n int, all bool) func(*env) (*Result, error) {
	return func(b *env) (*Result, error) {
		threads := 1
		if all {
			threads = runtimeProcs()
		}
		// Lumen and OpenBLAS in turns, as the other figures and their baselines are.
		half := b.opts.Duration / 2
		var lumen, blas float64
		var blasErr error
		for range 2 {
			v, err := gpu.MatmulGFLOPS(n, threads, half)
			if err != nil {
				return nil, err
			}
			lumen = max(lumen, v)
			if blasErr == nil {
				v, err := gpu.OpenBLASGFLOPS(n, threads, half)
				if err != nil {
					blasErr = err
				}
				blas = max(blas, v)
			}
		}
		res := &Result{Value: lumen, Unit: UnitGFLOPS, Notes: fmt.Sprintf(
			"%d×%d float32 matmul on %d core(s), %s kernel; the best of two turns", n, n, threads, gpu.BackendInfo().CPUKernel)}
		if blasErr == nil {
			res.Baseline = &Figure{Name: "openblas", Value: blas, Unit: UnitGFLOPS}
		} else {
			res.Notes += "; no OpenBLAS beside it: " + blasErr.Error()
		}
		return res, nil
	}
}

func transformerBlock(b *env) (*Result, error) {
	v, err := gpu.TransformerBlockPerSecond(b.opts.Duration)
	if err != nil {
		return nil, err
	}
	return &Result{Value: v, Unit: "passes/s", Notes: fmt.Sprintf(
		"forward + backward of a pre-norm transformer block (batch 4, sequence 128, width 256, 4 heads, flash attention), %d cores", runtimeProcs())}, nil
}
