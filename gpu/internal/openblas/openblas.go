// Package openblas loads OpenBLAS's sgemm at run time, without cgo, so that benchmarks can
// measure the CPU backend beside it on machines where it is installed.
package openblas

import (
	"fmt"
	"sync"

	"github.com/ebitengine/purego"
)

const (
	rowMajor = 101
	noTrans  = 111
)

var (
	once     sync.Once
	loadErr  error
	sgemm    func(order, ta, tb, m, n, k int32, alpha float32, a *float32, lda int32, b *float32, ldb int32, beta float32, c *float32, ldc int32)
	setThr   func(n int32)
	libNames = []string{"libopenblas.so.0", "libopenblas.so"}
)

// Load opens OpenBLAS, once; the error says why it is not available.
func Load() error {
	once.Do(func() {
		var lib uintptr
		var err error
		for _, name := range libNames {
			if lib, err = purego.Dlopen(name, purego.RTLD_NOW|purego.RTLD_GLOBAL); err == nil {
				break
			}
		}
		if err != nil {
			loadErr = fmt.Errorf("openblas: %w", err)
			return
		}
		if loadErr = register(lib, &sgemm, "cblas_sgemm"); loadErr != nil {
			return
		}
		loadErr = register(lib, &setThr, "openblas_set_num_threads")
	})
	return loadErr
}

func register(lib uintptr, fn any, name string) error {
	sym, err := purego.Dlsym(lib, name)
	if err != nil {
		return fmt.Errorf("openblas: %s: %w", name, err)
	}
	purego.RegisterFunc(fn, sym)
	return nil
}

// SetThreads sets OpenBLAS's thread count. Load must have succeeded.
func SetThreads(n int) { setThr(int32(n)) }

// Sgemm computes C = A·B for row-major m x k A, k x n B and m x n C. Load must have succeeded.
func Sgemm(m, n, k int, a, b, c []float32) {
	sgemm(rowMajor, noTrans, noTrans, int32(m), int32(n), int32(k), 1, &a[0], int32(k), &b[0], int32(n), 0, &c[0], int32(n))
}
