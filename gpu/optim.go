package gpu

import (
	"fmt"
	"math"
)

// paramData returns a parameter's values and gradient for an in-place update. Parameters must
// be contiguous float32 leaves; a parameter without a gradient is skipped (nil, nil).
func paramData(op string, p *Tensor) (w, g []float32, err error) {
	if err := p.check(op, Float32); err != nil {
		return nil, nil, err
	}
	if p.node != nil || !p.IsContiguous() {
		return nil, nil, shapeErr(op, "parameters must be contiguous leaf tensors", p)
	}
	if p.grad == nil {
		return nil, nil, nil
	}
	if !sameShape(p.grad.shape, p.shape) {
		return nil, nil, shapeErr(op, "gradient shape differs from the parameter's", p, p.grad)
	}
	if err := p.syncHost(); err != nil {
		return nil, nil, err
	}
	if g, err = p.grad.data(op); err != nil {
		return nil, nil, err
	}
	p.hostWritten()
	return p.st.f32[p.off : p.off+p.Numel()], g, nil
}

// SGD is stochastic gradient descent with momentum (PyTorch's form: v = μ·v + g + λ·w,
// w -= lr·v). Step is not safe for concurrent use.
type SGD struct {
	LR, Momentum, WeightDecay float32

	params []*Tensor
	vel    [][]float32
}

// NewSGD returns an SGD optimiser over params.
func NewSGD(params []*Tensor, lr, momentum float32) *SGD {
	return &SGD{LR: lr, Momentum: momentum, params: params, vel: make([][]float32, len(params))}
}

// Step updates every parameter that has a gradient.
func (o *SGD) Step() error {
	for i, p := range o.params {
		w, g, err := paramData("sgd", p)
		if err != nil {
			return err
		}
		if w == nil {
			continue
		}
		if o.Momentum != 0 && o.vel[i] == nil {
			o.vel[i] = make([]float32, len(w))
		}
		v := o.vel[i]
		for j := range w {
			d := g[j] + o.WeightDecay*w[j]
			if v != nil {
				v[j] = o.Momentum*v[j] + d
				d = v[j]
			}
			w[j] -= o.LR * d
		}
	}
	return nil
}

// ZeroGrad clears the gradients of the optimiser's parameters.
func (o *SGD) ZeroGrad() { zeroGrads(o.params) }

// AdamW is Adam with decoupled weight decay (Loshchilov & Hutter): w -= lr·(m̂/(√v̂+ε) + λ·w).
// Step is not safe for concurrent use.
type AdamW struct {
	LR, Beta1, Beta2, Eps, WeightDecay float32

	params []*Tensor
	m, v   [][]float32
	t      int
}

// NewAdamW returns an AdamW optimiser with the usual defaults (β1 0.9, β2 0.999, ε 1e-8,
// weight decay 0.01), which the caller may change before the first Step.
func NewAdamW(params []*Tensor, lr float32) *AdamW {
	return &AdamW{LR: lr, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, params: params,
		m: make([][]float32, len(params)), v: make([][]float32, len(params))}
}

// Step updates every parameter that has a gradient.
func (o *AdamW) Step() error {
	o.t++
	bc1 := 1 - math.Pow(float64(o.Beta1), float64(o.t))
	bc2 := 1 - math.Pow(float64(o.Beta2), float64(o.t))
	for i, p := range o.params {
		w, g, err := paramData("adamw", p)
		if err != nil {
			return err
		}
		if w == nil {
			continue
		}
		if o.m[i] == nil {
			o.m[i], o.v[i] = make([]float32, len(w)), make([]float32, len(w))
		}
		m, v := o.m[i], o.v[i]
		for j := range w {
			m[j] = o.Beta1*m[j] + (1-o.Beta1)*g[j]
			v[j] = o.Beta2*v[j] + (1-o.Beta2)*g[j]*g[j]
			mh := float64(m[j]) / bc1
			vh := float64(v[j]) / bc2
			w[j] -= o.LR * (float32(mh/(math.Sqrt(vh)+float64(o.Eps))) + o.WeightDecay*w[j])
		}
	}
	return nil
}

// ZeroGrad clears the gradients of the optimiser's parameters.
func (o *AdamW) ZeroGrad() { zeroGrads(o.params) }

func zeroGrads(ps []*Tensor) {
	for _, p := range ps {
		p.ZeroGrad()
	}
}

// ClipGradNorm scales the gradients of params so that their global L2 norm is at most maxNorm,
// and returns the norm before clipping. Gradients are replaced, not written in place, so
// tensors shared with them are not changed.
func ClipGradNorm(params []*Tensor, maxNorm float64) (float64, error) {
	if !(maxNorm > 0) {
		return 0, opErr("clip_grad_norm", ErrArgument, "max norm %v must be positive", maxNorm)
	}
	var ss float64
	for _, p := range params {
		if p.grad == nil {
			continue
		}
		g, err := p.grad.data("clip_grad_norm")
		if err != nil {
			return 0, err
		}
		for _, x := range g {
			ss += float64(x) * float64(x)
		}
	}
	norm := math.Sqrt(ss)
	if norm <= maxNorm || math.IsNaN(norm) {
		return norm, nil
	}
	f := float32(maxNorm / (norm + 1e-6))
	for _, p := range params {
		if p.grad == nil {
			continue
		}
		g, err := scaleRaw("clip_grad_norm", p.grad, f, 0)
		if err != nil {
			return norm, fmt.Errorf("clip %v: %w", p.shape, err)
		}
		p.grad = g
	}
	return norm, nil
}
