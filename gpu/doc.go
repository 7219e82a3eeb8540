// Package gpu holds Lumen's tensors: a float32 Tensor API with reverse-mode autograd, a
// multi-threaded CPU backend that is always present and a CUDA backend chosen at run time.
package gpu
