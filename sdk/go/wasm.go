//go:build wasip1

package lumen

import (
	"encoding/json"
	"runtime"
	"unsafe"

	"github.com/lumenflow/lumen/sdk/abi"
)

// The guest's side of ABI v1. Pointers cross as uint32: wasm32 addresses, into Go memory that
// the collector does not move.

var (
	// pinned keeps the buffers handed out by lumen_alloc alive until lumen_call takes them.
	pinned = map[uint32][]byte{}
	// lastOut keeps the previous call's output alive until the host has copied it.
	lastOut  []byte
	manifest []byte
)

//go:wasmexport lumen_abi_v1
func lumenABIv1() {}

//go:wasmexport lumen_alloc
func lumenAlloc(size uint32) uint32 {
	if size == 0 {
		size = 1
	}
	b := make([]byte, size)
	p := ptrOf(b)
	pinned[p] = b
	return p
}

//go:wasmexport lumen_manifest
func lumenManifest() uint64 {
	if manifest == nil {
		manifest, _ = json.Marshal(Manifest())
	}
	return abi.Pack(ptrOf(manifest), uint32(len(manifest)))
}

//go:wasmexport lumen_call
func lumenCall(fn, ptr, n uint32) uint64 {
	var in []byte
	if buf, ok := pinned[ptr]; ok {
		delete(pinned, ptr)
		if int(n) <= len(buf) {
			in = buf[:n]
		}
	}
	if in == nil && n > 0 {
		reportError(&Error{Code: "bad_input", Message: "lumen_call: input buffer was not allocated by lumen_alloc"})
		return 0
	}
	out, err := dispatch(fn, in)
	if err != nil {
		reportError(err)
		return 0
	}
	lastOut = out
	if len(out) == 0 {
		return 0
	}
	return abi.Pack(ptrOf(out), uint32(len(out)))
}

func reportError(err error) {
	b := guestErrorJSON(err)
	lumen_error(ptrOf(b), uint32(len(b)))
	runtime.KeepAlive(b)
}

func ptrOf(b []byte) uint32 {
	if len(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

//go:wasmimport lumen log
func lumen_log(level int32, ptr, n uint32) int32

//go:wasmimport lumen error
func lumen_error(ptr, n uint32) int32

//go:wasmimport lumen result_len
func lumen_result_len() int32

//go:wasmimport lumen result_read
func lumen_result_read(ptr, n uint32) int32

//go:wasmimport lumen object_put
func lumen_object_put(ptr, n uint32) int64

//go:wasmimport lumen object_get
func lumen_object_get(h, timeoutMs int64) int64

//go:wasmimport lumen object_release
func lumen_object_release(h int64) int32

//go:wasmimport lumen task_submit
func lumen_task_submit(ptr, n uint32) int64

//go:wasmimport lumen task_cancel
func lumen_task_cancel(h int64) int32

//go:wasmimport lumen wait
func lumen_wait(ptr, n uint32) int64

//go:wasmimport lumen actor_create
func lumen_actor_create(ptr, n uint32) int64

//go:wasmimport lumen actor_call
func lumen_actor_call(ptr, n uint32) int64

//go:wasmimport lumen actor_kill
func lumen_actor_kill(h int64) int32

// Each wrapper keeps its buffer alive across the import call: the import sees only an address.

// withBytes calls a (ptr, len) -> i64 import on b, keeping b alive across the call.
func withBytes(b []byte, imp func(ptr, n uint32) int64) int64 {
	r := imp(ptrOf(b), uint32(len(b)))
	runtime.KeepAlive(b)
	return r
}

func hostLog(level int32, b []byte) {
	lumen_log(level, ptrOf(b), uint32(len(b)))
	runtime.KeepAlive(b)
}

func hostObjectPut(b []byte) int64 { return withBytes(b, lumen_object_put) }

func hostObjectGet(h, timeoutMs int64) int64 { return lumen_object_get(h, timeoutMs) }
func hostObjectRelease(h int64) int32        { return lumen_object_release(h) }

func hostTaskSubmit(b []byte) int64 { return withBytes(b, lumen_task_submit) }

func hostTaskCancel(h int64) int32 { return lumen_task_cancel(h) }

func hostWait(b []byte) int64 { return withBytes(b, lumen_wait) }

func hostActorCreate(b []byte) int64 { return withBytes(b, lumen_actor_create) }

func hostActorCall(b []byte) int64 { return withBytes(b, lumen_actor_call) }

func hostActorKill(h int64) int32 { return lumen_actor_kill(h) }

// takeResult copies the pending result out of the host: n bytes, or result_len's when n < 0.
func takeResult(n int64) []byte {
	if n < 0 {
		n = int64(lumen_result_len())
	}
	if n <= 0 {
		return nil
	}
	b := make([]byte, n)
	got := lumen_result_read(ptrOf(b), uint32(n))
	if got < 0 {
		return nil
	}
	return b[:got]
}

//go:wasmimport lumen tensor_create
func lumen_tensor_create(specPtr, specLen, dataPtr, dataLen uint32) int64

//go:wasmimport lumen tensor_op
func lumen_tensor_op(ptr, n uint32) int64

//go:wasmimport lumen tensor_read
func lumen_tensor_read(h int64) int64

//go:wasmimport lumen tensor_info
func lumen_tensor_info(h int64) int64

//go:wasmimport lumen tensor_backward
func lumen_tensor_backward(h int64) int32

//go:wasmimport lumen tensor_grad
func lumen_tensor_grad(h int64) int64

//go:wasmimport lumen tensor_free
func lumen_tensor_free(h int64) int32

//go:wasmimport lumen optim_create
func lumen_optim_create(ptr, n uint32) int64

//go:wasmimport lumen optim_step
func lumen_optim_step(h int64) int32

//go:wasmimport lumen optim_zero_grad
func lumen_optim_zero_grad(h int64) int32

func hostTensorCreate(spec, data []byte) int64 {
	r := lumen_tensor_create(ptrOf(spec), uint32(len(spec)), ptrOf(data), uint32(len(data)))
	runtime.KeepAlive(spec)
	runtime.KeepAlive(data)
	return r
}

func hostTensorOp(b []byte) int64 { return withBytes(b, lumen_tensor_op) }

func hostOptimCreate(b []byte) int64 { return withBytes(b, lumen_optim_create) }

func hostTensorRead(h int64) int64     { return lumen_tensor_read(h) }
func hostTensorInfo(h int64) int64     { return lumen_tensor_info(h) }
func hostTensorBackward(h int64) int32 { return lumen_tensor_backward(h) }
func hostTensorGrad(h int64) int64     { return lumen_tensor_grad(h) }
func hostTensorFree(h int64) int32     { return lumen_tensor_free(h) }
func hostOptimStep(h int64) int32      { return lumen_optim_step(h) }
func hostOptimZeroGrad(h int64) int32  { return lumen_optim_zero_grad(h) }
