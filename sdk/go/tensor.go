package lumen

import (
	"encoding/binary"
	"encoding/json"
	"math"

	"github.com/lumenflow/lumen/sdk/abi"
)

// Tensor is a tensor that lives on the host (on its GPU when it has one) and that the guest
// drives by handle through the tensors capability (lumen.Require(abi.CapTensors)). Ops run on
// the host and return new tensors; autograd records them, so Backward on a loss fills the
// gradients of the leaves made with requiresGrad.
//
// A tensor lives until Free or the end of the call that made it; an actor's tensors live as long
// as the actor, so an actor that trains across calls should Free its intermediates. Freeing a
// view (Reshape, Op "transpose", "slice", …) drops only its handle. Every tensor of a job counts
// against the job's tensor budget; past it ops fail with abi.ErrLimit.
type Tensor struct{ h int64 }

// Handle is the tensor's host handle.
func (t *Tensor) Handle() int64 { return t.h }

func tensorOf(r int64) (*Tensor, error) {
	if r < 0 {
		return nil, hostError(r)
	}
	return &Tensor{h: r}, nil
}

func createTensor(spec abi.TensorSpec, data []byte) (*Tensor, error) {
	b, _ := json.Marshal(spec)
	return tensorOf(hostTensorCreate(b, data))
}

// NewTensor makes a float32 tensor of shape from data in row-major order (nil: zeros). With
// requiresGrad it is a leaf whose Grad Backward fills.
func NewTensor(shape []int, data []float32, requiresGrad bool) (*Tensor, error) {
	var raw []byte
	if data != nil {
		raw = make([]byte, 4*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
		}
	}
	return createTensor(abi.TensorSpec{DType: abi.DTypeF32, Shape: shape, RequiresGrad: requiresGrad}, raw)
}

// NewIndexTensor makes an int64 tensor of shape, for labels and embedding indices.
func NewIndexTensor(shape []int, data []int64) (*Tensor, error) {
	var raw []byte
	if data != nil {
		raw = make([]byte, 8*len(data))
		for i, v := range data {
			binary.LittleEndian.PutUint64(raw[8*i:], uint64(v))
		}
	}
	return createTensor(abi.TensorSpec{DType: abi.DTypeI64, Shape: shape}, raw)
}

// Op runs the host op name (see abi.TensorOps) on inputs with attrs (nil for none), e.g.
// Op("conv2d", []*Tensor{x, w, b}, map[string]any{"padding": 1}).
func Op(name string, inputs []*Tensor, attrs map[string]any) (*Tensor, error) {
	req := struct {
		Op     string         `json:"op"`
		Inputs []int64        `json:"inputs"`
		Attrs  map[string]any `json:"attrs,omitempty"`
	}{Op: name, Inputs: make([]int64, len(inputs)), Attrs: attrs}
	for i, t := range inputs {
		if t == nil {
			return nil, &Error{Status: abi.ErrBadPayload, Message: "tensor op " + name + ": nil input"}
		}
		req.Inputs[i] = t.h
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Status: abi.ErrBadPayload, Message: "tensor op " + name + ": " + err.Error()}
	}
	return tensorOf(hostTensorOp(b))
}

// MatMul is the (batched, broadcasting) matrix product a·b.
func MatMul(a, b *Tensor) (*Tensor, error) { return Op("matmul", []*Tensor{a, b}, nil) }

// Linear is x·wᵀ + bias for w of [out, in]; bias may be nil.
func Linear(x, w, bias *Tensor) (*Tensor, error) {
	if bias == nil {
		return Op("linear", []*Tensor{x, w}, nil)
	}
	return Op("linear", []*Tensor{x, w, bias}, nil)
}

// Conv2d convolves x [N, C, H, W] with weight [O, C, kh, kw] and adds bias [O] (may be nil).
func Conv2d(x, weight, bias *Tensor, stride, padding int) (*Tensor, error) {
	in := []*Tensor{x, weight}
	if bias != nil {
		in = append(in, bias)
	}
	return Op("conv2d", in, map[string]any{"stride": stride, "padding": padding})
}

// MaxPool2d takes the maximum over k×k windows of x [N, C, H, W] (stride 0: k).
func MaxPool2d(x *Tensor, k, stride int) (*Tensor, error) {
	return Op("max_pool2d", []*Tensor{x}, map[string]any{"kernel": k, "stride": stride})
}

// CrossEntropy is the mean cross-entropy of logits [..., classes] against integer labels [...].
func CrossEntropy(logits, labels *Tensor) (*Tensor, error) {
	return Op("cross_entropy", []*Tensor{logits, labels}, nil)
}

// Add is t + u, broadcasting.
func (t *Tensor) Add(u *Tensor) (*Tensor, error) { return Op("add", []*Tensor{t, u}, nil) }

// Sub is t - u, broadcasting.
func (t *Tensor) Sub(u *Tensor) (*Tensor, error) { return Op("sub", []*Tensor{t, u}, nil) }

// Mul is t · u elementwise, broadcasting.
func (t *Tensor) Mul(u *Tensor) (*Tensor, error) { return Op("mul", []*Tensor{t, u}, nil) }

// Div is t / u elementwise, broadcasting.
func (t *Tensor) Div(u *Tensor) (*Tensor, error) { return Op("div", []*Tensor{t, u}, nil) }

// ReLU is max(t, 0).
func (t *Tensor) ReLU() (*Tensor, error) { return Op("relu", []*Tensor{t}, nil) }

// Reshape is a view of t with shape (one dim may be -1).
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	return Op("reshape", []*Tensor{t}, map[string]any{"shape": shape})
}

// Mean averages t over axes (none: all of them).
func (t *Tensor) Mean(axes ...int) (*Tensor, error) {
	return Op("mean", []*Tensor{t}, map[string]any{"axes": axes})
}

// Sum adds t over axes (none: all of them).
func (t *Tensor) Sum(axes ...int) (*Tensor, error) {
	return Op("sum", []*Tensor{t}, map[string]any{"axes": axes})
}

// Info returns the tensor's dtype and shape.
func (t *Tensor) Info() (abi.TensorInfo, error) {
	var info abi.TensorInfo
	r := hostTensorInfo(t.h)
	if r < 0 {
		return info, hostError(r)
	}
	if err := json.Unmarshal(takeResult(r), &info); err != nil {
		return info, &Error{Status: abi.ErrInternal, Message: "tensor_info: " + err.Error()}
	}
	return info, nil
}

// Shape returns the tensor's shape.
func (t *Tensor) Shape() ([]int, error) {
	info, err := t.Info()
	return info.Shape, err
}

// Float32s reads a float32 tensor's values, row-major.
func (t *Tensor) Float32s() ([]float32, error) {
	raw, err := t.raw()
	if err != nil {
		return nil, err
	}
	out := make([]float32, len(raw)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return out, nil
}

// Item reads the value of a one-element float32 tensor, such as a loss.
func (t *Tensor) Item() (float32, error) {
	v, err := t.Float32s()
	if err != nil {
		return 0, err
	}
	if len(v) != 1 {
		return 0, &Error{Status: abi.ErrBadPayload, Message: "tensor item: the tensor has more than one element"}
	}
	return v[0], nil
}

func (t *Tensor) raw() ([]byte, error) {
	r := hostTensorRead(t.h)
	if r < 0 {
		return nil, hostError(r)
	}
	return takeResult(r), nil
}

// Backward runs reverse-mode autograd from the one-element tensor t (a loss): the leaves it
// depends on that require grad accumulate their gradients.
func (t *Tensor) Backward() error { return status(hostTensorBackward(t.h)) }

// Grad returns a copy of the gradient Backward accumulated in leaf t.
func (t *Tensor) Grad() (*Tensor, error) { return tensorOf(hostTensorGrad(t.h)) }

// Free frees the tensor now; its handle is unknown after.
func (t *Tensor) Free() error { return status(hostTensorFree(t.h)) }

func status(r int32) error {
	if r < 0 {
		return hostError(int64(r))
	}
	return nil
}

// Optimizer updates parameter tensors from their gradients, on the host.
type Optimizer struct{ h int64 }

// NewOptimizer makes an optimiser from an optim_create request; its Params are set from params.
func NewOptimizer(req abi.OptimRequest, params []*Tensor) (*Optimizer, error) {
	req.Params = make([]int64, len(params))
	for i, p := range params {
		req.Params[i] = p.h
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, &Error{Status: abi.ErrBadPayload, Message: "optim_create: " + err.Error()}
	}
	r := hostOptimCreate(b)
	if r < 0 {
		return nil, hostError(r)
	}
	return &Optimizer{h: r}, nil
}

// NewAdamW makes an AdamW optimiser (decoupled weight decay; β1 0.9, β2 0.999, ε 1e-8 unless
// NewOptimizer says otherwise).
func NewAdamW(params []*Tensor, lr, weightDecay float64) (*Optimizer, error) {
	return NewOptimizer(abi.OptimRequest{Kind: abi.OptimAdamW, LR: lr, WeightDecay: &weightDecay}, params)
}

// NewSGD makes an SGD optimiser with momentum.
func NewSGD(params []*Tensor, lr, momentum float64) (*Optimizer, error) {
	return NewOptimizer(abi.OptimRequest{Kind: abi.OptimSGD, LR: lr, Momentum: &momentum}, params)
}

// Step updates the parameters from their gradients.
func (o *Optimizer) Step() error { return status(hostOptimStep(o.h)) }

// ZeroGrad clears the parameters' gradients; call it before each Backward.
func (o *Optimizer) ZeroGrad() error { return status(hostOptimZeroGrad(o.h)) }
