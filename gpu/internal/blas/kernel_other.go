//go:build !amd64

package blas

const hasAsm = false

func asmKernel(k int, a, b, c []float32, ldc int, acc bool) { goKernel(k, a, b, c, ldc, acc) }
