// Package gpu holds Lumen's tensors: a float32 Tensor API with reverse-mode autograd, a
// multi-threaded CPU backend that is always present and a CUDA backend chosen at run time.
//
// # Errors and panics
//
// Every op is a package-level function that returns an error, never panics on bad input, and
// names the op and the shapes in that error (see [OpError] and the sentinel errors): the host
// reaches this package on behalf of untrusted guests and must not crash. For model code written
// in Go, the same ops exist as [Tensor] methods that panic with an *[OpError] instead; [Try]
// turns such a panic back into an error, and [Must] wraps any (tensor, error) pair.
//
//	y, err := gpu.MatMul(x, w)        // error form
//	y := x.MatMul(w).Add(b).GELU()    // panicking form, for Go code that owns its shapes
//
// # Ownership and concurrency
//
// Ops never modify their inputs and always return new tensors (views share storage with the
// tensor they were taken from). A tensor may be read by many goroutines at once; the few
// mutating calls (optimiser steps, [Tensor.ZeroGrad], [Tensor.SetRequiresGrad], [Arena.Free],
// [Tensor.Free], [Backward]) must not run concurrently with other use of the same tensors.
//
// # Memory
//
// Tensors made through an [Arena] count their bytes against its limit; an op's output joins the
// arena of its first input that has one. [Arena.Free] releases every tensor of the arena at once.
//
// # Backends
//
// The CPU backend is always present. When the CUDA driver, cuBLAS and NVRTC load and a device
// answers, tensors moved there with [Tensor.To] run matmuls with cuBLAS and elementwise ops with
// kernels compiled by NVRTC; every other op runs on the CPU copy. [BackendInfo] says which
// backends are available and, when CUDA is not, why.
package gpu
