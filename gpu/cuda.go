package gpu

import (
	"fmt"
	"log"
	"math"
	"os"
	"runtime"
	"sync"

	"github.com/lumenflow/lumen/gpu/internal/cuda"
)

// devMem is a storage's copy in CUDA device memory. At least one of the two copies is
// current: CPU ops read the host copy (downloading first when it is stale) and write fresh host
// copies; CUDA kernels read the device copy (uploading first when it is stale) and write fresh
// device copies. Only float32 storage is ever uploaded.
type devMem struct {
	ptr       uintptr
	hostValid bool // the host slice holds the current values
	devValid  bool // the device buffer holds the current values
}

func (d *devMem) free() {
	if d.ptr != 0 && gpuDev != nil {
		gpuDev.Free(d.ptr)
	}
	d.ptr = 0
	d.devValid = false
}

var (
	backendOnce sync.Once
	backendInfo Info
	gpuDev      *cuda.Device
)

// BackendInfo reports the backends of this process. The first call probes for CUDA, loading
// its libraries, unless the environment sets LUMEN_GPU=cpu; when CUDA is unusable the reason is
// logged once and kept in CUDAReason.
func BackendInfo() Info {
	backendOnce.Do(func() {
		backendInfo = Info{CPUKernel: cpuKernelName()}
		if os.Getenv("LUMEN_GPU") == "cpu" {
			backendInfo.CUDAReason = "disabled by LUMEN_GPU=cpu"
			return
		}
		d, err := cuda.Shared()
		if err != nil {
			backendInfo.CUDAReason = err.Error()
			log.Printf("gpu: CUDA unavailable, tensors stay on the CPU: %v", err)
			return
		}
		gpuDev = d
		backendInfo.CUDA = true
		backendInfo.CUDADevice = fmt.Sprintf("%s (sm_%d%d)", d.Name, d.Major, d.Minor)
		backendInfo.CUDALibraries = d.Libraries
	})
	info := backendInfo
	info.Threads = Threads()
	return info
}

func cudaReady() bool { return BackendInfo().CUDA }

// syncHost makes the host copy current.
func (t *Tensor) syncHost() error {
	d := t.st.dev
	if d == nil || d.hostValid {
		return nil
	}
	if t.st.dtype == Float32 {
		if err := gpuDev.Download(t.st.f32, d.ptr); err != nil {
			return opErr("to_host", ErrDevice, "%v", err)
		}
	}
	d.hostValid = true
	return nil
}

// syncDevice makes the device copy of a float32 storage current.
func (t *Tensor) syncDevice() error {
	d := t.st.dev
	if d == nil || d.devValid || t.st.dtype != Float32 {
		return nil
	}
	if d.ptr == 0 {
		if err := t.st.devAlloc(); err != nil {
			return err
		}
	}
	if err := gpuDev.Upload(d.ptr, t.st.f32); err != nil {
		return opErr("to_device", ErrDevice, "%v", err)
	}
	d.devValid = true
	return nil
}

// devAlloc gives a storage device memory, returned to the device when the storage is freed or
// collected.
func (s *storage) devAlloc() error {
	p, err := gpuDev.Alloc(s.nbytes)
	if err != nil {
		return opErr("to_device", ErrDevice, "%v", err)
	}
	s.dev.ptr = p
	// An explicitly freed storage has already returned it (ptr is 0 then).
	runtime.AddCleanup(s, func(d *devMem) { d.free() }, s.dev)
	return nil
}

// hostWritten marks the host copy as the current one after an in-place update.
func (t *Tensor) hostWritten() {
	if d := t.st.dev; d != nil {
		d.hostValid, d.devValid = true, false
	}
}

// cudaOut allocates an op's output on the device, with its device copy about to be written.
func cudaOut(op string, a *Arena, shape []int) (*Tensor, error) {
	out, err := alloc(op, a, CUDA, Float32, shape)
	if err != nil {
		return nil, err
	}
	if err := out.st.devAlloc(); err != nil {
		return nil, err
	}
	out.st.dev.hostValid, out.st.dev.devValid = false, true
	return out, nil
}

// devPtr is the device address of t's first element; t must be synced.
func (t *Tensor) devPtr() uintptr { return t.st.dev.ptr + uintptr(4*t.off) }

func onCUDA(ts ...*Tensor) bool {
	for _, t := range ts {
		if t.st.dev == nil || gpuDev == nil {
			return false
		}
	}
	return true
}

// cudaBinary runs add/sub/mul/div on the device for contiguous operands where b equals a's
// shape or a's trailing dims (a bias); other layouts fall back to the CPU (ok == false).
func cudaBinary(kind binKind, a, b *Tensor, shape []int) (*Tensor, bool, error) {
	if !onCUDA(a, b) || !a.IsContiguous() || !b.IsContiguous() || !sameShape(a.shape, shape) {
		return nil, false, nil
	}
	n, nb := a.Numel(), b.Numel()
	trail := shape[len(shape)-min(len(b.shape), len(shape)):]
	if nb == 0 || n == 0 || (!sameShape(b.shape, shape) && !sameShape(stripOnes(b.shape), stripOnes(trail))) {
		return nil, false, nil
	}
	if err := a.syncDevice(); err != nil {
		return nil, true, err
	}
	if err := b.syncDevice(); err != nil {
		return nil, true, err
	}
	op := binNames[kind]
	out, err := cudaOut(op, arenaOf(a, b), shape)
	if err != nil {
		return nil, true, err
	}
	if err := gpuDev.Launch(op+"_f32", int64(n), a.devPtr(), b.devPtr(), out.devPtr(), int64(n), int64(nb)); err != nil {
		return nil, true, opErr(op, ErrDevice, "%v", err)
	}
	return out, true, nil
}

func stripOnes(s []int) []int {
	for len(s) > 0 && s[0] == 1 {
		s = s[1:]
	}
	return s
}

var cudaUnaryOps = map[string]bool{"exp": true, "log": true, "tanh": true, "sigmoid": true, "relu": true, "gelu": true, "silu": true, "sqrt": true}

// cudaUnary runs an elementwise function on the device for a contiguous input.
func cudaUnary(op string, x *Tensor) (*Tensor, bool, error) {
	if !onCUDA(x) || !x.IsContiguous() || !cudaUnaryOps[op] || x.Numel() == 0 {
		return nil, false, nil
	}
	if err := x.syncDevice(); err != nil {
		return nil, true, err
	}
	out, err := cudaOut(op, arenaOf(x), x.shape)
	if err != nil {
		return nil, true, err
	}
	if err := gpuDev.Launch(op+"_f32", int64(x.Numel()), x.devPtr(), out.devPtr(), int64(x.Numel())); err != nil {
		return nil, true, opErr(op, ErrDevice, "%v", err)
	}
	return out, true, nil
}

// gemmOperand describes a row-major-indexed matrix view (rows x cols, strides rs, cs) in
// cuBLAS's column-major terms, or reports that cuBLAS cannot read it in place.
func gemmOperand(rows, cols, rs, cs int) (trans bool, ld int, ok bool) {
	switch {
	case cs == 1 && (rs >= max(cols, 1) || rows == 1):
		// Row-major: column-major cols x rows with ld rs, so no transpose in C = Bᵀ·Aᵀ terms.
		return false, max(rs, cols, 1), true
	case rs == 1 && (cs >= max(rows, 1) || cols == 1):
		return true, max(cs, rows, 1), true
	}
	return false, 0, false
}

// batchStride collapses broadcast batch strides to one stride, when they form one.
func batchStride(batch, strides []int) (int, bool) {
	if len(batch) == 0 {
		return 0, true
	}
	last := strides[len(strides)-1]
	inner := 1
	for d := len(batch) - 1; d >= 0; d-- {
		if batch[d] != 1 && strides[d] != last*inner {
			return 0, false
		}
		inner *= batch[d]
	}
	return last, true
}

// cudaMatmul runs a batched matmul with cuBLAS when both operands live on the device and their
// layouts can be read in place.
func cudaMatmul(a, b *Tensor, batch []int, m, n, k int) (*Tensor, bool, error) {
	if !onCUDA(a, b) {
		return nil, false, nil
	}
	ra, rb := a.Rank(), b.Rank()
	nb, _ := numel(batch)
	if m*n*k == 0 || nb == 0 || int64(m)*int64(n)*int64(nb) > math.MaxInt32 || max(m, n, k) > math.MaxInt32 {
		return nil, false, nil
	}
	ta, lda, okA := gemmOperand(m, k, a.strides[ra-2], a.strides[ra-1])
	tb, ldb, okB := gemmOperand(k, n, b.strides[rb-2], b.strides[rb-1])
	sa, okSA := batchStride(batch, bstridesOf(a.shape[:ra-2], a.strides[:ra-2], batch))
	sb, okSB := batchStride(batch, bstridesOf(b.shape[:rb-2], b.strides[:rb-2], batch))
	if !okA || !okB || !okSA || !okSB {
		return nil, false, nil
	}
	if err := a.syncDevice(); err != nil {
		return nil, true, err
	}
	if err := b.syncDevice(); err != nil {
		return nil, true, err
	}
	out, err := cudaOut("matmul", arenaOf(a, b), append(append([]int(nil), batch...), m, n))
	if err != nil {
		return nil, true, err
	}
	// Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ.
	err = gpuDev.Sgemm(n, m, k,
		cuda.Operand{Ptr: b.devPtr(), Trans: tb, LD: ldb, Stride: int64(sb)},
		cuda.Operand{Ptr: a.devPtr(), Trans: ta, LD: lda, Stride: int64(sa)},
		out.devPtr(), n, int64(m*n), nb)
	if err != nil {
		return nil, true, opErr("matmul", ErrDevice, "%v", err)
	}
	return out, true, nil
}
