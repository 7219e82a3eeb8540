package tensors

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/lumenflow/lumen/gpu"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// Host returns the engine behind the guests' tensor_* and optim_* host functions, over s. A call
// works on the tensors of its job (host.CallInfo.Job); what it makes joins the Scope that scopeOf
// returns for it, or, where that is nil, lives until tensor_free or DropJob.
func (s *Store) Host(scopeOf func(*host.CallInfo) *Scope) host.Tensors {
	if scopeOf == nil {
		scopeOf = func(*host.CallInfo) *Scope { return nil }
	}
	return hostTensors{s: s, scopeOf: scopeOf}
}

// hostTensors is the engine behind the guests' tensor_* and optim_* host functions.
type hostTensors struct {
	s       *Store
	scopeOf func(*host.CallInfo) *Scope
}

var _ host.Tensors = hostTensors{}

// with runs fn on the call's job's tensors, holding their lock, and turns a panic into an error.
func (ti hostTensors) with(c *host.CallInfo, what string, fn func(j *jobTensors) error) (err error) {
	j := ti.s.job(c.Job)
	j.mu.Lock()
	defer j.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			err = &host.StatusError{Status: abi.ErrInternal, Message: fmt.Sprintf("%s: panic: %v", what, p)}
		}
	}()
	return fn(j)
}

// add registers t under a new handle in the call's scope. The caller holds j.mu.
func (ti hostTensors) add(c *host.CallInfo, j *jobTensors, t *gpu.Tensor, view bool) int64 {
	j.next++
	j.tensors[j.next] = tensorEntry{t: t, view: view}
	ti.track(c, j.next)
	return j.next
}

// track adds handle h of the call's job to the call's scope, if it has one. The caller holds the
// job's lock.
func (ti hostTensors) track(c *host.CallInfo, h int64) {
	if sc := ti.scopeOf(c); sc != nil {
		sc.refs = append(sc.refs, ref{job: c.Job, h: h})
	}
}

func (j *jobTensors) tensor(job string, h int64) (*gpu.Tensor, error) {
	e, ok := j.tensors[h]
	if !ok {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no tensor %d in job %q", h, job)}
	}
	return e.t, nil
}

// gpuErr maps an error of package gpu to the guest's status: a spent budget is ErrLimit, the
// rest ErrBadPayload, with gpu's message naming the op and the shapes.
func gpuErr(err error) error {
	if errors.Is(err, gpu.ErrBudget) {
		return &host.StatusError{Status: abi.ErrLimit, Message: err.Error()}
	}
	return &host.StatusError{Status: abi.ErrBadPayload, Message: err.Error()}
}

func dtypeName(d gpu.DType) string {
	switch d {
	case gpu.Float32:
		return abi.DTypeF32
	case gpu.Int32:
		return abi.DTypeI32
	case gpu.Int64:
		return abi.DTypeI64
	}
	return d.String()
}

func (ti hostTensors) TensorCreate(_ context.Context, c *host.CallInfo, spec *abi.TensorSpec, data []byte) (int64, error) {
	var h int64
	err := ti.with(c, abi.FnTensorCreate, func(j *jobTensors) error {
		n := spec.Numel()
		// Refuse what can never fit before converting the data.
		if need := int64(n) * int64(abi.DTypeSize(spec.DType)); need > j.arena.Limit() {
			return gpuErr(fmt.Errorf("tensor_create %s%v: %d bytes, over the job's %d-byte tensor budget: %w", spec.DType, spec.Shape, need, j.arena.Limit(), gpu.ErrBudget))
		}
		var t *gpu.Tensor
		var err error
		switch {
		case len(data) == 0 && spec.DType == abi.DTypeF32:
			t, err = j.arena.Zeros(spec.Shape...)
		case len(data) == 0 && spec.DType == abi.DTypeI32:
			t, err = j.arena.FromInt32(make([]int32, n), spec.Shape...)
		case len(data) == 0:
			t, err = j.arena.FromInt64(make([]int64, n), spec.Shape...)
		case spec.DType == abi.DTypeF32:
			v := make([]float32, n)
			for i := range v {
				v[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
			t, err = j.arena.FromFloat32(v, spec.Shape...)
		case spec.DType == abi.DTypeI32:
			v := make([]int32, n)
			for i := range v {
				v[i] = int32(binary.LittleEndian.Uint32(data[4*i:]))
			}
			t, err = j.arena.FromInt32(v, spec.Shape...)
		default:
			v := make([]int64, n)
			for i := range v {
				v[i] = int64(binary.LittleEndian.Uint64(data[8*i:]))
			}
			t, err = j.arena.FromInt64(v, spec.Shape...)
		}
		if err != nil {
			return gpuErr(err)
		}
		if spec.RequiresGrad {
			t.SetRequiresGrad(true)
		}
		h = ti.add(c, j, t, false)
		return nil
	})
	return h, err
}

// viewOps are the ops whose output may share its input's storage.
var viewOps = map[string]bool{"reshape": true, "transpose": true, "permute": true, "slice": true,
	"broadcast_to": true, "detach": true, "contiguous": true}

func (ti hostTensors) TensorOp(_ context.Context, c *host.CallInfo, op *abi.TensorOp) (int64, error) {
	var h int64
	err := ti.with(c, abi.FnTensorOp, func(j *jobTensors) error {
		in := make([]*gpu.Tensor, len(op.Inputs))
		for i, ih := range op.Inputs {
			t, err := j.tensor(c.Job, ih)
			if err != nil {
				return err
			}
			in[i] = t
		}
		out, err := runOp(op, in)
		if err != nil {
			return gpuErr(err)
		}
		h = ti.add(c, j, out, viewOps[op.Op])
		return nil
	})
	return h, err
}

// runOp runs one op of abi.TensorOps; the input count was checked by abi.DecodeTensorOp.
func runOp(op *abi.TensorOp, in []*gpu.Tensor) (*gpu.Tensor, error) {
	a := &op.Attrs
	opt := func(i int) *gpu.Tensor {
		if i < len(in) {
			return in[i]
		}
		return nil
	}
	axis := func(def int) int {
		if a.Axis != nil {
			return *a.Axis
		}
		return def
	}
	eps := float32(a.Eps)
	if a.Eps == 0 {
		eps = 1e-5
	}
	unary := map[string]func(*gpu.Tensor) (*gpu.Tensor, error){
		"neg": gpu.Neg, "exp": gpu.Exp, "log": gpu.Log, "tanh": gpu.Tanh, "sigmoid": gpu.Sigmoid,
		"sqrt": gpu.Sqrt, "relu": gpu.ReLU, "gelu": gpu.GELU, "silu": gpu.SiLU, "contiguous": gpu.Contiguous,
	}
	binary := map[string]func(x, y *gpu.Tensor) (*gpu.Tensor, error){
		"matmul": gpu.MatMul, "add": gpu.Add, "sub": gpu.Sub, "mul": gpu.Mul, "div": gpu.Div,
		"embedding": gpu.Embedding, "cross_entropy": gpu.CrossEntropy,
	}
	reduce := map[string]func(*gpu.Tensor, []int, bool) (*gpu.Tensor, error){"sum": gpu.Sum, "mean": gpu.Mean, "max": gpu.Max}
	if f, ok := unary[op.Op]; ok {
		return f(in[0])
	}
	if f, ok := binary[op.Op]; ok {
		return f(in[0], in[1])
	}
	if f, ok := reduce[op.Op]; ok {
		return f(in[0], a.Axes, a.Keepdim)
	}
	switch op.Op {
	case "linear":
		return gpu.Linear(in[0], in[1], opt(2))
	case "detach":
		if in[0] == nil {
			return nil, fmt.Errorf("detach: nil tensor: %w", gpu.ErrArgument)
		}
		return in[0].Detach(), nil
	case "scale":
		s := 1.0
		if a.Scale != nil {
			s = *a.Scale
		}
		return gpu.Scale(in[0], float32(s), float32(a.Shift))
	case "softmax":
		return gpu.Softmax(in[0], axis(-1))
	case "log_softmax":
		return gpu.LogSoftmax(in[0], axis(-1))
	case "reshape":
		return gpu.Reshape(in[0], a.Shape...)
	case "broadcast_to":
		return gpu.BroadcastTo(in[0], a.Shape...)
	case "transpose":
		if len(a.Dims) != 2 {
			return nil, fmt.Errorf("transpose: dims %v, want two axes: %w", a.Dims, gpu.ErrArgument)
		}
		return gpu.Transpose(in[0], a.Dims[0], a.Dims[1])
	case "permute":
		return gpu.Permute(in[0], a.Dims...)
	case "slice":
		return gpu.Slice(in[0], axis(0), a.Start, a.End)
	case "concat":
		return gpu.Concat(in, axis(0))
	case "conv2d":
		return gpu.Conv2d(in[0], in[1], opt(2), gpu.Conv2dParams{Stride: a.Stride, Padding: a.Padding})
	case "max_pool2d":
		return gpu.MaxPool2d(in[0], a.Kernel, a.Stride)
	case "layernorm":
		return gpu.LayerNorm(in[0], opt(1), opt(2), eps)
	case "rmsnorm":
		return gpu.RMSNorm(in[0], opt(1), eps)
	case "dropout":
		return gpu.Dropout(in[0], float32(a.P), a.Seed)
	case "rope":
		base := a.Base
		if base == 0 {
			base = 10000
		}
		return gpu.RoPE(in[0], a.Pos0, base)
	case "attention":
		return gpu.Attention(in[0], in[1], in[2], a.Causal)
	case "flash_attention":
		block := a.Block
		if block == 0 {
			block = 64
		}
		return gpu.FlashAttention(in[0], in[1], in[2], a.Causal, block)
	}
	return nil, fmt.Errorf("tensor op %q: not implemented by this engine: %w", op.Op, gpu.ErrArgument)
}

func (ti hostTensors) TensorRead(_ context.Context, c *host.CallInfo, h int64) ([]byte, error) {
	var out []byte
	err := ti.with(c, abi.FnTensorRead, func(j *jobTensors) error {
		t, err := j.tensor(c.Job, h)
		if err != nil {
			return err
		}
		switch t.DType() {
		case gpu.Float32:
			v, err := t.Float32s()
			if err != nil {
				return gpuErr(err)
			}
			out = make([]byte, 4*len(v))
			for i, x := range v {
				binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
			}
		default:
			v, err := t.Int64s()
			if err != nil {
				return gpuErr(err)
			}
			if t.DType() == gpu.Int32 {
				out = make([]byte, 4*len(v))
				for i, x := range v {
					binary.LittleEndian.PutUint32(out[4*i:], uint32(int32(x)))
				}
			} else {
				out = make([]byte, 8*len(v))
				for i, x := range v {
					binary.LittleEndian.PutUint64(out[8*i:], uint64(x))
				}
			}
		}
		return nil
	})
	return out, err
}

func (ti hostTensors) TensorInfo(_ context.Context, c *host.CallInfo, h int64) (*abi.TensorInfo, error) {
	var info *abi.TensorInfo
	err := ti.with(c, abi.FnTensorInfo, func(j *jobTensors) error {
		t, err := j.tensor(c.Job, h)
		if err != nil {
			return err
		}
		info = &abi.TensorInfo{DType: dtypeName(t.DType()), Shape: t.Shape()}
		return nil
	})
	return info, err
}

func (ti hostTensors) TensorBackward(_ context.Context, c *host.CallInfo, h int64) error {
	return ti.with(c, abi.FnTensorBackward, func(j *jobTensors) error {
		t, err := j.tensor(c.Job, h)
		if err != nil {
			return err
		}
		if err := gpu.Backward(t); err != nil {
			return gpuErr(err)
		}
		return nil
	})
}

// TensorGrad returns a copy of the gradient, so that freeing it leaves the leaf's own intact.
func (ti hostTensors) TensorGrad(_ context.Context, c *host.CallInfo, h int64) (int64, error) {
	var gh int64
	err := ti.with(c, abi.FnTensorGrad, func(j *jobTensors) error {
		t, err := j.tensor(c.Job, h)
		if err != nil {
			return err
		}
		g := t.Grad()
		if g == nil {
			return &host.StatusError{Status: abi.ErrNotFound, Message: fmt.Sprintf("tensor %d %v has no gradient (requires_grad: %v; run tensor_backward first)", h, t.Shape(), t.RequiresGrad())}
		}
		cp, err := gpu.Scale(g, 1, 0)
		if err != nil {
			return gpuErr(err)
		}
		gh = ti.add(c, j, cp, false)
		return nil
	})
	return gh, err
}

func (ti hostTensors) TensorFree(_ context.Context, c *host.CallInfo, h int64) error {
	return ti.with(c, abi.FnTensorFree, func(j *jobTensors) error {
		if _, ok := j.tensors[h]; !ok {
			return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no tensor %d in job %q", h, c.Job)}
		}
		j.drop(h)
		return nil
	})
}

func (ti hostTensors) OptimCreate(_ context.Context, c *host.CallInfo, req *abi.OptimRequest) (int64, error) {
	var h int64
	err := ti.with(c, abi.FnOptimCreate, func(j *jobTensors) error {
		params := make([]*gpu.Tensor, len(req.Params))
		for i, ph := range req.Params {
			t, err := j.tensor(c.Job, ph)
			if err != nil {
				return err
			}
			if t.DType() != gpu.Float32 || !t.RequiresGrad() {
				return &host.StatusError{Status: abi.ErrBadPayload, Message: fmt.Sprintf(
					"optim_create: params[%d] (tensor %d, %s%v) is not an f32 tensor that requires grad", i, ph, dtypeName(t.DType()), t.Shape())}
			}
			params[i] = t
		}
		var o optimiser
		switch req.Kind {
		case abi.OptimSGD:
			var m float32
			if req.Momentum != nil {
				m = float32(*req.Momentum)
			}
			sgd := gpu.NewSGD(params, float32(req.LR), m)
			if req.WeightDecay != nil {
				sgd.WeightDecay = float32(*req.WeightDecay)
			}
			o = sgd
		default:
			adam := gpu.NewAdamW(params, float32(req.LR))
			if req.WeightDecay != nil {
				adam.WeightDecay = float32(*req.WeightDecay)
			}
			if req.Betas != nil {
				adam.Beta1, adam.Beta2 = float32(req.Betas[0]), float32(req.Betas[1])
			}
			if req.Eps != nil {
				adam.Eps = float32(*req.Eps)
			}
			o = adam
		}
		j.next++
		h = j.next
		j.optims[h] = o
		ti.track(c, h)
		return nil
	})
	return h, err
}

func (j *jobTensors) optim(job string, h int64) (optimiser, error) {
	o, ok := j.optims[h]
	if !ok {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no optimiser %d in job %q", h, job)}
	}
	return o, nil
}

func (ti hostTensors) OptimStep(_ context.Context, c *host.CallInfo, h int64) error {
	return ti.with(c, abi.FnOptimStep, func(j *jobTensors) error {
		o, err := j.optim(c.Job, h)
		if err != nil {
			return err
		}
		if err := o.Step(); err != nil {
			return gpuErr(err)
		}
		return nil
	})
}

func (ti hostTensors) OptimZeroGrad(_ context.Context, c *host.CallInfo, h int64) error {
	return ti.with(c, abi.FnOptimZeroGrad, func(j *jobTensors) error {
		o, err := j.optim(c.Job, h)
		if err != nil {
			return err
		}
		o.ZeroGrad()
		return nil
	})
}
