package gpu

import (
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/lumenflow/lumen/gpu/internal/blas"
)

var threads atomic.Int64

// SetThreads sets how many goroutines the CPU backend uses per op (n <= 0: GOMAXPROCS) and
// returns the previous setting. It is process-wide and safe for concurrent use.
func SetThreads(n int) int { return int(threads.Swap(int64(n))) }

// Threads is the number of goroutines the CPU backend uses per op.
func Threads() int {
	if n := threads.Load(); n > 0 {
		return int(n)
	}
	return runtime.GOMAXPROCS(0)
}

// parallelFor runs fn over [0, n) in contiguous chunks on up to Threads() goroutines, giving
// each at least grain items.
func parallelFor(n, grain int, fn func(lo, hi int)) {
	if n <= 0 {
		return
	}
	w := Threads()
	if grain < 1 {
		grain = 1
	}
	w = min(w, (n+grain-1)/grain)
	if w <= 1 {
		fn(0, n)
		return
	}
	var wg sync.WaitGroup
	for i := 0; i < w; i++ {
		lo, hi := n*i/w, n*(i+1)/w
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(lo, hi)
		}()
	}
	wg.Wait()
}

// sgemm multiplies row-major or strided matrices on the CPU with the blocked kernel.
func sgemm(threads, m, n, k int, a, b blas.Matrix, c []float32, ldc int, acc bool) {
	blas.Sgemm(cpuImpl, threads, m, n, k, a, b, c, ldc, acc)
}

// cpuImpl is the CPU matmul implementation; tests and benchmarks switch it.
var cpuImpl = blas.Auto
