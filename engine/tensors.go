package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/lumenflow/lumen/gpu"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// DefaultTensorBytesPerJob is the default of Config.TensorBytesPerJob.
const DefaultTensorBytesPerJob = 1 << 30

// Tensors are per job, like objects: a handle names a tensor or an optimiser of its job only, and
// a job's tensors count against one gpu.Arena of Config.TensorBytesPerJob bytes, past which
// allocations fail with abi.ErrLimit.
//
// Lifetime: a tensor or optimiser lives until tensor_free, or until the call that made it ends —
// except that an actor's calls share the actor's scope, so what an actor makes (its model's
// weights, its optimiser) lives as long as the actor. An actor that trains across calls should
// free its intermediates. DropJobTensors frees what is left of a job.
//
// Views (reshape, transpose, permute, slice, broadcast_to, detach, contiguous) share storage with
// the tensor they view: freeing a view drops only its handle, never the viewed tensor's storage.
//
// A job's tensor work runs one host call at a time (gpu's in-place calls — backward, optimiser
// steps, frees — must not race with other use of the same tensors); each op still uses every
// core. No gpu panic reaches the guest: ops report errors, which become ErrBadPayload naming the
// op and the shapes.
type tensorStore struct {
	limit int64

	mu   sync.Mutex
	jobs map[string]*jobTensors
}

type jobTensors struct {
	mu      sync.Mutex
	arena   *gpu.Arena
	next    int64
	tensors map[int64]tensorEntry
	optims  map[int64]optimiser
}

type tensorEntry struct {
	t    *gpu.Tensor
	view bool // shares another tensor's storage: freeing it only drops the handle
}

type optimiser interface {
	Step() error
	ZeroGrad()
}

// tensorRef is a tensor or optimiser a call made, freed when the call's scope ends.
type tensorRef struct {
	job string
	h   int64
}

func newTensorStore(limit int64) *tensorStore {
	if limit <= 0 {
		limit = DefaultTensorBytesPerJob
	}
	return &tensorStore{limit: limit, jobs: map[string]*jobTensors{}}
}

// job returns job's tensors, made on first use.
func (s *tensorStore) job(job string) *jobTensors {
	s.mu.Lock()
	defer s.mu.Unlock()
	j := s.jobs[job]
	if j == nil {
		j = &jobTensors{arena: gpu.NewArena(s.limit), tensors: map[int64]tensorEntry{}, optims: map[int64]optimiser{}}
		s.jobs[job] = j
	}
	return j
}

// free frees the tensors and optimisers of refs that still exist.
func (s *tensorStore) free(refs []tensorRef) {
	for _, r := range refs {
		s.mu.Lock()
		j := s.jobs[r.job]
		s.mu.Unlock()
		if j == nil {
			continue
		}
		j.mu.Lock()
		j.drop(r.h)
		j.mu.Unlock()
	}
}

// drop frees handle h, a tensor or an optimiser, and reports whether it existed. The caller
// holds j.mu.
func (j *jobTensors) drop(h int64) bool {
	if e, ok := j.tensors[h]; ok {
		delete(j.tensors, h)
		if !e.view {
			e.t.Free()
		}
		return true
	}
	if _, ok := j.optims[h]; ok {
		delete(j.optims, h)
		return true
	}
	return false
}

// DropJobTensors frees every tensor and optimiser of job. Handles of job are unknown after; the
// job's budget starts again from zero.
func (e *Engine) DropJobTensors(job string) {
	s := e.tensors
	s.mu.Lock()
	j := s.jobs[job]
	delete(s.jobs, job)
	s.mu.Unlock()
	if j != nil {
		j.mu.Lock()
		j.tensors, j.optims = map[int64]tensorEntry{}, map[int64]optimiser{}
		j.arena.Free()
		j.mu.Unlock()
	}
}

// TensorStats reports the bytes of job's live tensors and the most they reached.
func (e *Engine) TensorStats(job string) (used, peak int64) {
	s := e.tensors
	s.mu.Lock()
	j := s.jobs[job]
	s.mu.Unlock()
	if j == nil {
		return 0, 0
	}
	return j.arena.Used(), j.arena.Peak()
}

// tensorsImpl is the engine behind the guests' tensor_* and optim_* host functions.
type tensorsImpl struct{ e *Engine }

var _ host.Tensors = tensorsImpl{}

// with runs fn on the call's job's tensors, holding their lock, and turns a panic into an error.
func (ti tensorsImpl) with(c *host.CallInfo, what string, fn func(j *jobTensors) error) (err error) {
	j := ti.e.tensors.job(c.Job)
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
func (ti tensorsImpl) add(c *host.CallInfo, j *jobTensors, t *gpu.Tensor, view bool) int64 {
	j.next++
	j.tensors[j.next] = tensorEntry{t: t, view: view}
	cc := callCtx(c)
	cc.tensors = append(cc.tensors, tensorRef{job: c.Job, h: j.next})
	return j.next
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

var dtypes = map[string]gpu.DType{abi.DTypeF32: gpu.Float32, abi.DTypeI32: gpu.Int32, abi.DTypeI64: gpu.Int64}

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

func (ti tensorsImpl) TensorCreate(_ context.Context, c *host.CallInfo, spec *abi.TensorSpec, data []byte) (int64, error) {
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

func (ti tensorsImpl) TensorOp(_ context.Context, c *host.CallInfo, op *abi.TensorOp) (int64, error) {
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

func (ti tensorsImpl) TensorRead(_ context.Context, c *host.CallInfo, h int64) ([]byte, error) {
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

func (ti tensorsImpl) TensorInfo(_ context.Context, c *host.CallInfo, h int64) (*abi.TensorInfo, error) {
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

func (ti tensorsImpl) TensorBackward(_ context.Context, c *host.CallInfo, h int64) error {
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
func (ti tensorsImpl) TensorGrad(_ context.Context, c *host.CallInfo, h int64) (int64, error) {
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

func (ti tensorsImpl) TensorFree(_ context.Context, c *host.CallInfo, h int64) error {
	return ti.with(c, abi.FnTensorFree, func(j *jobTensors) error {
		if _, ok := j.tensors[h]; !ok {
			return &abi.Error{Kind: abi.KindNotFound, Message: fmt.Sprintf("no tensor %d in job %q", h, c.Job)}
		}
		j.drop(h)
		return nil
	})
}

func (ti tensorsImpl) OptimCreate(_ context.Context, c *host.CallInfo, req *abi.OptimRequest) (int64, error) {
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
		cc := callCtx(c)
		cc.tensors = append(cc.tensors, tensorRef{job: c.Job, h: h})
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

func (ti tensorsImpl) OptimStep(_ context.Context, c *host.CallInfo, h int64) error {
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

func (ti tensorsImpl) OptimZeroGrad(_ context.Context, c *host.CallInfo, h int64) error {
	return ti.with(c, abi.FnOptimZeroGrad, func(j *jobTensors) error {
		o, err := j.optim(c.Job, h)
		if err != nil {
			return err
		}
		o.ZeroGrad()
		return nil
	})
}
