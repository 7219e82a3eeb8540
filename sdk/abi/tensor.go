package abi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Caps on the tensor payloads. A tensor's bytes are further bounded by its job's tensor budget.
const (
	MaxTensorRank    = 8
	MaxTensorElems   = 1 << 30 // elements of one tensor
	MaxOpInputs      = 1024    // inputs of one tensor_op (concat takes many)
	MaxOptimParams   = 100_000 // tensors one optimiser updates
	MaxTensorAttrLen = 64      // elements of an attribute list (axes, shape, dims)
)

// Tensor element types, as TensorSpec.DType and TensorInfo.DType name them. Values cross the ABI
// as little-endian raw bytes: 4 per f32 and i32, 8 per i64.
const (
	DTypeF32 = "f32"
	DTypeI32 = "i32"
	DTypeI64 = "i64"
)

// DTypeSize is the bytes of one element of dtype d, or 0 for an unknown dtype.
func DTypeSize(d string) int {
	switch d {
	case DTypeF32, DTypeI32:
		return 4
	case DTypeI64:
		return 8
	}
	return 0
}

// TensorSpec is the tensor_create spec: the new tensor's dtype and shape. Its data is the
// little-endian raw values in row-major order, or empty for zeros.
type TensorSpec struct {
	DType        string `json:"dtype"`
	Shape        []int  `json:"shape"`
	RequiresGrad bool   `json:"requires_grad,omitempty"` // f32 only: a leaf whose Grad backward fills
}

// Numel is the number of elements of the spec's shape (1 for a scalar).
func (s *TensorSpec) Numel() int {
	n := 1
	for _, d := range s.Shape {
		n *= d
	}
	return n
}

// CheckData checks that n bytes of data fit the spec: none (zeros) or exactly every element.
func (s *TensorSpec) CheckData(n int) error {
	if want := s.Numel() * DTypeSize(s.DType); n != 0 && n != want {
		return fmt.Errorf("tensor spec: %d bytes of data for %s%v, want %d (or 0 for zeros)", n, s.DType, s.Shape, want)
	}
	return nil
}

// TensorInfo is the pending result of tensor_info, as JSON.
type TensorInfo struct {
	DType string `json:"dtype"`
	Shape []int  `json:"shape"`
}

// TensorOp is the tensor_op payload: run Op on the tensors Inputs with Attrs. See TensorOps for
// each op's inputs and attributes.
type TensorOp struct {
	Op     string      `json:"op"`
	Inputs []int64     `json:"inputs"`
	Attrs  TensorAttrs `json:"attrs,omitzero"`
}

// TensorAttrs are the attributes an op may take; each op accepts only those TensorOps lists for
// it, and a zero field takes the op's default.
type TensorAttrs struct {
	Axes    []int    `json:"axes,omitempty"`    // sum, mean, max: reduced axes (none: all)
	Keepdim bool     `json:"keepdim,omitempty"` // sum, mean, max
	Axis    *int     `json:"axis,omitempty"`    // softmax, log_softmax (default -1), slice, concat (default 0)
	Shape   []int    `json:"shape,omitempty"`   // reshape (one -1 allowed), broadcast_to
	Dims    []int    `json:"dims,omitempty"`    // transpose: two axes; permute: every axis
	Start   int      `json:"start,omitempty"`   // slice
	End     int      `json:"end,omitempty"`     // slice: exclusive
	Stride  int      `json:"stride,omitempty"`  // conv2d (default 1), max_pool2d (default kernel)
	Padding int      `json:"padding,omitempty"` // conv2d
	Kernel  int      `json:"kernel,omitempty"`  // max_pool2d
	Eps     float64  `json:"eps,omitempty"`     // layernorm, rmsnorm (default 1e-5)
	P       float64  `json:"p,omitempty"`       // dropout: probability of dropping
	Seed    uint64   `json:"seed,omitempty"`    // dropout
	Scale   *float64 `json:"scale,omitempty"`   // scale: x·scale + shift (default 1)
	Shift   float64  `json:"shift,omitempty"`   // scale
	Causal  bool     `json:"causal,omitempty"`  // attention, flash_attention
	Block   int      `json:"block,omitempty"`   // flash_attention: tile size (default 64)
	Pos0    int      `json:"pos0,omitempty"`    // rope: position of the first row
	Base    float64  `json:"base,omitempty"`    // rope (default 10000)
}

// OpSpec says what one tensor op takes: between MinInputs and MaxInputs input handles, and the
// named attributes.
type OpSpec struct {
	MinInputs, MaxInputs int
	Attrs                []string
}

// TensorOps lists the ops of tensor_op. Inputs are in the order the gpu package's functions take
// them: linear(x, w[, b]), conv2d(x [N,C,H,W], w [O,C,kh,kw][, b]), layernorm(x[, w[, b]]),
// rmsnorm(x[, w]), embedding(weight, indices), cross_entropy(logits, labels),
// attention(q, k, v). Elementwise ops broadcast.
var TensorOps = map[string]OpSpec{
	"matmul": {2, 2, nil}, "linear": {2, 3, nil},
	"add": {2, 2, nil}, "sub": {2, 2, nil}, "mul": {2, 2, nil}, "div": {2, 2, nil},
	"neg": {1, 1, nil}, "exp": {1, 1, nil}, "log": {1, 1, nil}, "tanh": {1, 1, nil},
	"sigmoid": {1, 1, nil}, "sqrt": {1, 1, nil}, "relu": {1, 1, nil}, "gelu": {1, 1, nil},
	"silu": {1, 1, nil}, "detach": {1, 1, nil}, "contiguous": {1, 1, nil},
	"scale": {1, 1, []string{"scale", "shift"}},
	"sum":   {1, 1, []string{"axes", "keepdim"}}, "mean": {1, 1, []string{"axes", "keepdim"}},
	"max":     {1, 1, []string{"axes", "keepdim"}},
	"softmax": {1, 1, []string{"axis"}}, "log_softmax": {1, 1, []string{"axis"}},
	"reshape": {1, 1, []string{"shape"}}, "broadcast_to": {1, 1, []string{"shape"}},
	"transpose": {1, 1, []string{"dims"}}, "permute": {1, 1, []string{"dims"}},
	"slice":  {1, 1, []string{"axis", "start", "end"}},
	"concat": {1, MaxOpInputs, []string{"axis"}},
	"conv2d": {2, 3, []string{"stride", "padding"}}, "max_pool2d": {1, 1, []string{"kernel", "stride"}},
	"layernorm": {1, 3, []string{"eps"}}, "rmsnorm": {1, 2, []string{"eps"}},
	"embedding": {2, 2, nil}, "cross_entropy": {2, 2, nil},
	"dropout":   {1, 1, []string{"p", "seed"}},
	"rope":      {1, 1, []string{"pos0", "base"}},
	"attention": {3, 3, []string{"causal"}}, "flash_attention": {3, 3, []string{"causal", "block"}},
}

// TensorOpNames returns the names of TensorOps, sorted.
func TensorOpNames() []string {
	names := make([]string, 0, len(TensorOps))
	for n := range TensorOps {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// OptimRequest is the optim_create payload. Kind "sgd" takes momentum and weight_decay; "adamw"
// takes betas, eps and weight_decay. Omitted fields take the gpu package's defaults.
type OptimRequest struct {
	Kind        string    `json:"kind"`
	Params      []int64   `json:"params"` // tensor handles of f32 leaves that require grad
	LR          float64   `json:"lr"`
	Momentum    *float64  `json:"momentum,omitempty"`
	WeightDecay *float64  `json:"weight_decay,omitempty"`
	Betas       []float64 `json:"betas,omitempty"` // [β1, β2]
	Eps         *float64  `json:"eps,omitempty"`
}

// Optimiser kinds.
const (
	OptimSGD   = "sgd"
	OptimAdamW = "adamw"
)

// DecodeTensorSpec decodes and validates a tensor_create spec.
func DecodeTensorSpec(b []byte) (*TensorSpec, error) {
	var s TensorSpec
	if err := decodeStrict("tensor spec", b, MaxRequestBytes, &s); err != nil {
		return nil, err
	}
	if DTypeSize(s.DType) == 0 {
		return nil, fmt.Errorf("tensor spec: dtype %q (want f32, i32 or i64)", s.DType)
	}
	if err := validShape("tensor spec: shape", s.Shape, false); err != nil {
		return nil, err
	}
	if s.RequiresGrad && s.DType != DTypeF32 {
		return nil, fmt.Errorf("tensor spec: requires_grad on a %s tensor (only f32 has gradients)", s.DType)
	}
	return &s, nil
}

// validShape checks a shape's rank, that its dims are positive (one -1 allowed with infer) and
// that it has at most MaxTensorElems elements.
func validShape(what string, shape []int, infer bool) error {
	if len(shape) > MaxTensorRank {
		return fmt.Errorf("%s: rank %d, at most %d", what, len(shape), MaxTensorRank)
	}
	n, inferred := 1, false
	for i, d := range shape {
		switch {
		case d == -1 && infer && !inferred:
			inferred = true
			continue
		case d < 1:
			return fmt.Errorf("%s[%d]: %d is not a positive size", what, i, d)
		case d > MaxTensorElems || n > MaxTensorElems/d:
			return fmt.Errorf("%s %v: more than %d elements", what, shape, MaxTensorElems)
		}
		n *= d
	}
	return nil
}

// DecodeTensorOp decodes and validates a tensor_op payload: a known op, its number of inputs,
// positive handles and only the attributes the op takes, each in range.
func DecodeTensorOp(b []byte) (*TensorOp, error) {
	// The attributes are read twice: once as raw fields, to refuse those the op does not take.
	var raw struct {
		Op     string                     `json:"op"`
		Inputs []int64                    `json:"inputs"`
		Attrs  map[string]json.RawMessage `json:"attrs"`
	}
	if err := decodeStrict("tensor op", b, MaxRequestBytes, &raw); err != nil {
		return nil, err
	}
	spec, ok := TensorOps[raw.Op]
	if !ok {
		return nil, fmt.Errorf("tensor op: unknown op %q (known: %s)", raw.Op, strings.Join(TensorOpNames(), ", "))
	}
	at := "tensor op " + raw.Op
	if n := len(raw.Inputs); n < spec.MinInputs || n > spec.MaxInputs {
		if spec.MinInputs == spec.MaxInputs {
			return nil, fmt.Errorf("%s: %d inputs, want %d", at, n, spec.MinInputs)
		}
		return nil, fmt.Errorf("%s: %d inputs, want %d to %d", at, n, spec.MinInputs, spec.MaxInputs)
	}
	if err := validHandles(at+": inputs", raw.Inputs); err != nil {
		return nil, err
	}
	for name := range raw.Attrs {
		allowed := false
		for _, a := range spec.Attrs {
			allowed = allowed || a == name
		}
		if !allowed {
			return nil, fmt.Errorf("%s: attribute %q is not one it takes (%s)", at, name, strings.Join(spec.Attrs, ", "))
		}
	}
	op := &TensorOp{Op: raw.Op, Inputs: raw.Inputs}
	if len(raw.Attrs) > 0 {
		ab, _ := json.Marshal(raw.Attrs)
		d := json.NewDecoder(bytes.NewReader(ab))
		d.DisallowUnknownFields()
		if err := d.Decode(&op.Attrs); err != nil {
			return nil, fmt.Errorf("%s: attrs: %w", at, err)
		}
	}
	if err := op.Attrs.validate(at); err != nil {
		return nil, err
	}
	return op, nil
}

func (a *TensorAttrs) validate(at string) error {
	lists := []struct {
		name string
		v    []int
	}{{"axes", a.Axes}, {"dims", a.Dims}}
	for _, l := range lists {
		if len(l.v) > MaxTensorAttrLen {
			return fmt.Errorf("%s: %s has %d entries, at most %d", at, l.name, len(l.v), MaxTensorAttrLen)
		}
		for i, x := range l.v {
			if x < -MaxTensorRank || x >= MaxTensorRank {
				return fmt.Errorf("%s: %s[%d] = %d is not an axis", at, l.name, i, x)
			}
		}
	}
	if a.Axis != nil && (*a.Axis < -MaxTensorRank || *a.Axis >= MaxTensorRank) {
		return fmt.Errorf("%s: axis %d is not an axis", at, *a.Axis)
	}
	if a.Shape != nil {
		if err := validShape(at+": shape", a.Shape, true); err != nil {
			return err
		}
	}
	small := []struct {
		name string
		v    int
	}{{"stride", a.Stride}, {"padding", a.Padding}, {"kernel", a.Kernel}, {"block", a.Block}}
	for _, s := range small {
		if s.v < 0 || s.v > 1<<16 {
			return fmt.Errorf("%s: %s %d outside 0..65536", at, s.name, s.v)
		}
	}
	if a.Start < 0 || a.End < 0 || a.Start > MaxTensorElems || a.End > MaxTensorElems {
		return fmt.Errorf("%s: slice [%d, %d) out of range", at, a.Start, a.End)
	}
	if a.Pos0 < 0 || a.Pos0 > MaxTensorElems {
		return fmt.Errorf("%s: pos0 %d out of range", at, a.Pos0)
	}
	if !finite(a.Eps) || a.Eps < 0 || a.Eps > 1 {
		return fmt.Errorf("%s: eps %v outside [0, 1]", at, a.Eps)
	}
	if !finite(a.P) || a.P < 0 || a.P >= 1 {
		return fmt.Errorf("%s: dropout p %v outside [0, 1)", at, a.P)
	}
	if a.Scale != nil && (!finite(*a.Scale) || math.Abs(*a.Scale) > math.MaxFloat32) {
		return fmt.Errorf("%s: scale %v is not a finite float32", at, *a.Scale)
	}
	if !finite(a.Shift) || math.Abs(a.Shift) > math.MaxFloat32 {
		return fmt.Errorf("%s: shift %v is not a finite float32", at, a.Shift)
	}
	if !finite(a.Base) || a.Base < 0 || a.Base > 1e12 {
		return fmt.Errorf("%s: base %v outside [0, 1e12]", at, a.Base)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// DecodeOptimRequest decodes and validates an optim_create payload.
func DecodeOptimRequest(b []byte) (*OptimRequest, error) {
	var r OptimRequest
	if err := decodeStrict("optim request", b, MaxRequestBytes, &r); err != nil {
		return nil, err
	}
	if r.Kind != OptimSGD && r.Kind != OptimAdamW {
		return nil, fmt.Errorf("optim request: kind %q (want sgd or adamw)", r.Kind)
	}
	if len(r.Params) == 0 || len(r.Params) > MaxOptimParams {
		return nil, fmt.Errorf("optim request: %d params, want 1 to %d", len(r.Params), MaxOptimParams)
	}
	if err := validHandles("optim request: params", r.Params); err != nil {
		return nil, err
	}
	if !finite(r.LR) || r.LR <= 0 || r.LR > 1e3 {
		return nil, fmt.Errorf("optim request: lr %v outside (0, 1000]", r.LR)
	}
	if r.WeightDecay != nil && (!finite(*r.WeightDecay) || *r.WeightDecay < 0 || *r.WeightDecay > 1e3) {
		return nil, fmt.Errorf("optim request: weight_decay %v outside [0, 1000]", *r.WeightDecay)
	}
	switch r.Kind {
	case OptimSGD:
		if r.Betas != nil || r.Eps != nil {
			return nil, fmt.Errorf("optim request: betas and eps are adamw's, not sgd's")
		}
		if r.Momentum != nil && (!finite(*r.Momentum) || *r.Momentum < 0 || *r.Momentum >= 1) {
			return nil, fmt.Errorf("optim request: momentum %v outside [0, 1)", *r.Momentum)
		}
	case OptimAdamW:
		if r.Momentum != nil {
			return nil, fmt.Errorf("optim request: momentum is sgd's, not adamw's")
		}
		if r.Betas != nil {
			if len(r.Betas) != 2 {
				return nil, fmt.Errorf("optim request: %d betas, want 2", len(r.Betas))
			}
			for i, b := range r.Betas {
				if !finite(b) || b < 0 || b >= 1 {
					return nil, fmt.Errorf("optim request: betas[%d] %v outside [0, 1)", i, b)
				}
			}
		}
		if r.Eps != nil && (!finite(*r.Eps) || *r.Eps <= 0 || *r.Eps > 1) {
			return nil, fmt.Errorf("optim request: eps %v outside (0, 1]", *r.Eps)
		}
	}
	return &r, nil
}
