package gpu

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/lumenflow/lumen/gpu/internal/blas"
	"github.com/lumenflow/lumen/gpu/internal/openblas"
)

// BenchmarkMatmul measures fp32 square matmul in GFLOP/s: the CPU backend on one core and on
// all cores, beside OpenBLAS (when libopenblas.so.0 loads) and the portable Go kernel, in the same
// run. Sizes: 512, 1024, 2048 (the portable kernel and the naive loop only at 512).
func BenchmarkMatmul(b *testing.B) {
	haveBLAS := openblas.Load() == nil
	if !haveBLAS {
		b.Logf("OpenBLAS not measured: %v", openblas.Load())
	}
	b.Logf("CPU kernel %s, %d cores", BackendInfo().CPUKernel, runtime.GOMAXPROCS(0))
	for _, n := range []int{512, 1024, 2048} {
		x, y := randT(1, -1, 1, n, n), randT(2, -1, 1, n, n)
		flops := 2 * float64(n) * float64(n) * float64(n)
		report := func(b *testing.B) {
			b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		}
		for _, cores := range []int{1, runtime.GOMAXPROCS(0)} {
			label := "1core"
			if cores > 1 {
				label = fmt.Sprintf("%dcores", cores)
			} else if cores == runtime.GOMAXPROCS(0) && cores > 1 {
				continue
			}
			b.Run(fmt.Sprintf("f32_%d/%s/lumen", n, label), func(b *testing.B) {
				defer SetThreads(SetThreads(cores))
				for i := 0; i < b.N; i++ {
					if _, err := matmulRaw("matmul", x, y); err != nil {
						b.Fatal(err)
					}
				}
				report(b)
			})
			if haveBLAS {
				b.Run(fmt.Sprintf("f32_%d/%s/openblas", n, label), func(b *testing.B) {
					openblas.SetThreads(cores)
					c := make([]float32, n*n)
					for i := 0; i < b.N; i++ {
						openblas.Sgemm(n, n, n, x.st.f32, y.st.f32, c)
					}
					report(b)
				})
			}
		}
		if n == 512 {
			for _, impl := range []struct {
				name string
				impl blas.Impl
			}{{"portable_go", blas.Go}, {"naive", blas.Naive}} {
				b.Run(fmt.Sprintf("f32_%d/1core/%s", n, impl.name), func(b *testing.B) {
					defer SetThreads(SetThreads(1))
					prev := cpuImpl
					cpuImpl = impl.impl
					defer func() { cpuImpl = prev }()
					for i := 0; i < b.N; i++ {
						if _, err := matmulRaw("matmul", x, y); err != nil {
							b.Fatal(err)
						}
					}
					report(b)
				})
			}
		}
	}
}
