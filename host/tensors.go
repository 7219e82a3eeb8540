package host

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/tetratelabs/wazero/api"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Tensors is the engine behind the tensor_* and optim_* host functions: tensors, autograd and
// optimisers that live on the host and that a guest drives by handle. The host has checked every
// pointer and decoded and validated every payload before it calls; handles are > 0 but may be
// unknown. Like Services, it is called from the goroutine running the guest, must be safe for
// concurrent use, and its errors map to the guest's status the same way (a *StatusError chooses
// its own: ErrLimit for a spent budget, ErrBadPayload for an op that refuses its inputs).
//
// The *CallInfo is valid only until the method returns. Byte slices passed in are the
// implementation's to keep; byte slices returned are the host's.
type Tensors interface {
	// TensorCreate makes a tensor of spec from data (little-endian raw values, whose length the
	// host has checked with spec.CheckData; empty for zeros) and returns its handle (> 0).
	TensorCreate(ctx context.Context, c *CallInfo, spec *abi.TensorSpec, data []byte) (int64, error)
	// TensorOp runs op and returns the handle of its output.
	TensorOp(ctx context.Context, c *CallInfo, op *abi.TensorOp) (int64, error)
	// TensorRead returns tensor h's values as little-endian raw bytes, row-major.
	TensorRead(ctx context.Context, c *CallInfo, h int64) ([]byte, error)
	// TensorInfo returns tensor h's dtype and shape.
	TensorInfo(ctx context.Context, c *CallInfo, h int64) (*abi.TensorInfo, error)
	// TensorBackward runs reverse-mode autograd from the one-element tensor h.
	TensorBackward(ctx context.Context, c *CallInfo, h int64) error
	// TensorGrad returns a handle of the gradient accumulated in leaf h.
	TensorGrad(ctx context.Context, c *CallInfo, h int64) (int64, error)
	// TensorFree frees tensor h now; its handle is unknown after.
	TensorFree(ctx context.Context, c *CallInfo, h int64) error
	// OptimCreate makes an optimiser over req.Params and returns its handle.
	OptimCreate(ctx context.Context, c *CallInfo, req *abi.OptimRequest) (int64, error)
	// OptimStep updates the optimiser's parameters from their gradients.
	OptimStep(ctx context.Context, c *CallInfo, h int64) error
	// OptimZeroGrad clears the gradients of the optimiser's parameters.
	OptimZeroGrad(ctx context.Context, c *CallInfo, h int64) error
}

func (st *callState) tensors(what string) (Tensors, int64) {
	t := st.in.r.cfg.Tensors
	if t == nil {
		return nil, st.fail(abi.ErrUnavailable, what+": no tensor engine behind this host")
	}
	return t, 0
}

// tensor_create(spec_ptr, spec_len, data_ptr, data_len i32) -> i64 tensor handle.
func hostTensorCreate(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnTensorCreate, stack)
	if b == nil && code != 0 {
		return code
	}
	dptr, dn := uint32(stack[2]), uint32(stack[3])
	data, ok := view(mod, dptr, dn)
	if !ok {
		return badPointer(st, mod, abi.FnTensorCreate+" data", dptr, dn)
	}
	spec, err := abi.DecodeTensorSpec(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	if err := spec.CheckData(len(data)); err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	t, code := st.tensors(abi.FnTensorCreate)
	if t == nil {
		return code
	}
	h, err := t.TensorCreate(ctx, &st.info, spec, append([]byte(nil), data...))
	if err != nil {
		return st.failErr(abi.FnTensorCreate, err)
	}
	return checkHandle(st, abi.FnTensorCreate, h)
}

// tensor_op(ptr i32, len i32) -> i64 handle of the op's output.
func hostTensorOp(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnTensorOp, stack)
	if b == nil && code != 0 {
		return code
	}
	op, err := abi.DecodeTensorOp(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	t, code := st.tensors(abi.FnTensorOp)
	if t == nil {
		return code
	}
	h, err := t.TensorOp(ctx, &st.info, op)
	if err != nil {
		return st.failErr(abi.FnTensorOp, err)
	}
	return checkHandle(st, abi.FnTensorOp, h)
}

// optim_create(ptr i32, len i32) -> i64 optimiser handle.
func hostOptimCreate(ctx context.Context, st *callState, mod api.Module, stack []uint64) int64 {
	b, code := payload(st, mod, abi.FnOptimCreate, stack)
	if b == nil && code != 0 {
		return code
	}
	req, err := abi.DecodeOptimRequest(b)
	if err != nil {
		return st.fail(abi.ErrBadPayload, err.Error())
	}
	t, code := st.tensors(abi.FnOptimCreate)
	if t == nil {
		return code
	}
	h, err := t.OptimCreate(ctx, &st.info, req)
	if err != nil {
		return st.failErr(abi.FnOptimCreate, err)
	}
	return checkHandle(st, abi.FnOptimCreate, h)
}

// tensorHandle is the common start of the handle-taking tensor functions: a positive handle and
// an engine behind the host.
func tensorHandle(st *callState, what string, stack []uint64) (Tensors, int64, int64) {
	h := int64(stack[0])
	if h <= 0 {
		return nil, 0, st.fail(abi.ErrNotFound, fmt.Sprintf("%s: handle %d is not positive", what, h))
	}
	t, code := st.tensors(what)
	return t, h, code
}

// tensor_read(handle i64) -> i64 length of the pending raw values.
func hostTensorRead(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	t, h, code := tensorHandle(st, abi.FnTensorRead, stack)
	if t == nil {
		return code
	}
	data, err := t.TensorRead(ctx, &st.info, h)
	if err != nil {
		return st.failErr(abi.FnTensorRead, err)
	}
	return st.setPending(abi.FnTensorRead, data)
}

// tensor_info(handle i64) -> i64 length of the pending TensorInfo JSON.
func hostTensorInfo(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	t, h, code := tensorHandle(st, abi.FnTensorInfo, stack)
	if t == nil {
		return code
	}
	info, err := t.TensorInfo(ctx, &st.info, h)
	if err != nil {
		return st.failErr(abi.FnTensorInfo, err)
	}
	if info == nil {
		return st.fail(abi.ErrInternal, abi.FnTensorInfo+": the engine returned no info")
	}
	if info.Shape == nil {
		info.Shape = []int{} // a scalar
	}
	out, err := json.Marshal(info)
	if err != nil {
		return st.fail(abi.ErrInternal, abi.FnTensorInfo+": "+err.Error())
	}
	return st.setPending(abi.FnTensorInfo, out)
}

// tensor_grad(handle i64) -> i64 handle of the gradient.
func hostTensorGrad(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
	t, h, code := tensorHandle(st, abi.FnTensorGrad, stack)
	if t == nil {
		return code
	}
	g, err := t.TensorGrad(ctx, &st.info, h)
	if err != nil {
		return st.failErr(abi.FnTensorGrad, err)
	}
	return checkHandle(st, abi.FnTensorGrad, g)
}

// tensorStatus makes a handle-taking, status-returning tensor function: tensor_backward,
// tensor_free, optim_step and optim_zero_grad, each (handle i64) -> i32 status.
func tensorStatus(what string, call func(Tensors, context.Context, *CallInfo, int64) error) hostFunc {
	return func(ctx context.Context, st *callState, _ api.Module, stack []uint64) int64 {
		t, h, code := tensorHandle(st, what, stack)
		if t == nil {
			return code
		}
		if err := call(t, ctx, &st.info, h); err != nil {
			return st.failErr(what, err)
		}
		return 0
	}
}

var (
	hostTensorBackward = tensorStatus(abi.FnTensorBackward, Tensors.TensorBackward)
	hostTensorFree     = tensorStatus(abi.FnTensorFree, Tensors.TensorFree)
	hostOptimStep      = tensorStatus(abi.FnOptimStep, Tensors.OptimStep)
	hostOptimZeroGrad  = tensorStatus(abi.FnOptimZeroGrad, Tensors.OptimZeroGrad)
)
