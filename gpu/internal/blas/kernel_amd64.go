//go:build amd64

package blas

import "golang.org/x/sys/cpu"

// kernel6x16 is implemented in kernel_amd64.s with AVX2 and FMA.
//
//go:noescape
func kernel6x16(k int, a, b, c *float32, ldc int, acc int)

// hasAsm reports whether this CPU runs the assembly microkernel.
var hasAsm = cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasAVX

func asmKernel(k int, a, b, c []float32, ldc int, acc bool) {
	x := 0
	if acc {
		x = 1
	}
	kernel6x16(k, &a[0], &b[0], &c[0], ldc, x)
}
