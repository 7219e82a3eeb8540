package gpu

import "github.com/lumenflow/lumen/gpu/internal/blas"

func cpuKernelName() string {
	if blas.HasAsm() {
		return "avx2+fma"
	}
	return "go"
}
