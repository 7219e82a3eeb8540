package gpu

import (
	"math"
)

type binKind uint8

const (
	binAdd binKind = iota
	binSub
	binMul
	binDiv
)

var binNames = [...]string{"add", "sub", "mul", "div"}

func broadcastShape(a, b []int) ([]int, bool) {
	n := max(len(a), len(b))
	out := make([]int, n)
	for i := 0; i < n; i++ {
		da, db := 1, 1
		if j := len(a) - n + i; j >= 0 {
			da = a[j]
		}
		if j := len(b) - n + i; j >= 0 {
			db = b[j]
		}
		switch {
		case da == db:
			out[i] = da
		case da == 1:
			out[i] = db
		case db == 1:
			out[i] = da
		default:
			return nil, false
		}
	}
	return out, true
}

// bstrides returns t's strides broadcast to shape (0 where t has size 1 or lacks the dim).
func bstrides(t *Tensor, shape []int) []int {
	out := make([]int, len(shape))
	k := len(shape) - len(t.shape)
	for i := range t.shape {
		if t.shape[i] != 1 {
			out[k+i] = t.strides[i]
		}
	}
	return out
}

func arenaOf(ts ...*Tensor) *Arena {
	for _, t := range ts {
		if t != nil && t.st.arena != nil {
			return t.st.arena
		}
	}
	return nil
}

func binLoop(kind binKind, dst, x []float32, ox, sx int, y []float32, oy, sy int) {
	n := len(dst)
	if sx == 1 && sy == 1 {
		x, y = x[ox:ox+n], y[oy:oy+n]
		switch kind {
		case binAdd:
			for i := range dst {
				dst[i] = x[i] + y[i]
			}
		case binSub:
			for i := range dst {
				dst[i] = x[i] - y[i]
			}
		case binMul:
			for i := range dst {
				dst[i] = x[i] * y[i]
			}
		case binDiv:
			for i := range dst {
				dst[i] = x[i] / y[i]
			}
		}
		return
	}
	for i := range dst {
		a, b := x[ox+i*sx], y[oy+i*sy]
		switch kind {
		case binAdd:
			dst[i] = a + b
		case binSub:
			dst[i] = a - b
		case binMul:
			dst[i] = a * b
		case binDiv:
			dst[i] = a / b
		}
	}
}

// binaryRaw computes a broadcast binary op without recording autograd.
func binaryRaw(kind binKind, a, b *Tensor) (*Tensor, error) {
	op := binNames[kind]
	if err := a.check(op, Float32); err != nil {
		return nil, err
	}
	if err := b.check(op, Float32); err != nil {
		return nil, err
	}
	dev, err := deviceOf(op, a, b)
	if err != nil {
		return nil, err
	}
	shape, ok := broadcastShape(a.shape, b.shape)
	if !ok {
		return nil, shapeErr(op, "shapes do not broadcast", a, b)
	}
	if out, ok, err := cudaBinary(kind, a, b, shape); ok || err != nil {
		return out, err
	}
	if err := a.syncHost(); err != nil {
		return nil, err
	}
	if err := b.syncHost(); err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(a, b), dev, Float32, shape)
	if err != nil {
		return nil, err
	}
	dst := out.st.f32
	if len(dst) == 0 {
		return out, nil
	}
	if sameShape(a.shape, b.shape) && a.IsContiguous() && b.IsContiguous() {
		parallelFor(len(dst), 1<<15, func(lo, hi int) {
			binLoop(kind, dst[lo:hi], a.st.f32, a.off+lo, 1, b.st.f32, b.off+lo, 1)
		})
		return out, nil
	}
	sa, sb := bstrides(a, shape), bstrides(b, shape)
	if len(shape) == 0 {
		binLoop(kind, dst, a.st.f32, a.off, 0, b.st.f32, b.off, 0)
		return out, nil
	}
	last := len(shape) - 1
	inner := shape[last]
	rows := len(dst) / inner
	// Each outer index is one row of the last dimension.
	parallelFor(rows, max(1, (1<<15)/inner), func(lo, hi int) {
		idx := make([]int, last)
		for r := lo; r < hi; r++ {
			rem := r
			oa, ob := a.off, b.off
			for d := last - 1; d >= 0; d-- {
				idx[d] = rem % shape[d]
				rem /= shape[d]
				oa += idx[d] * sa[d]
				ob += idx[d] * sb[d]
			}
			binLoop(kind, dst[r*inner:(r+1)*inner], a.st.f32, oa, sa[last], b.st.f32, ob, sb[last])
		}
	})
	return out, nil
}

func addRaw(op string, a, b *Tensor) (*Tensor, error) { return binaryRaw(binAdd, a, b) }

// sumTo reduces a broadcast gradient g back to shape.
func sumTo(g *Tensor, shape []int) (*Tensor, error) {
	if sameShape(g.shape, shape) {
		return g, nil
	}
	extra := len(g.shape) - len(shape)
	var axes []int
	for i := range g.shape {
		if i < extra || (shape[i-extra] == 1 && g.shape[i] != 1) {
			axes = append(axes, i)
		}
	}
	s, err := reduceRaw("sum", redSum, g, axes, true)
	if err != nil {
		return nil, err
	}
	return reshapeRaw("sum_to", s, shape)
}

func binOp(kind binKind, a, b *Tensor) (*Tensor, error) {
	out, err := binaryRaw(kind, a, b)
	if err != nil {
		return nil, err
	}
	ad, bd, od := a.Detach(), b.Detach(), out.Detach()
	return record(out, binNames[kind], []*Tensor{a, b}, func(g *Tensor) ([]*Tensor, error) {
		var ga, gb *Tensor
		var err error
		switch kind {
		case binAdd:
			ga, gb = g, g
		case binSub:
			ga = g
			if gb, err = scaleRaw("sub", g, -1, 0); err != nil {
				return nil, err
			}
		case binMul:
			if ga, err = binaryRaw(binMul, g, bd); err != nil {
				return nil, err
			}
			if gb, err = binaryRaw(binMul, g, ad); err != nil {
				return nil, err
			}
		case binDiv:
			if ga, err = binaryRaw(binDiv, g, bd); err != nil {
				return nil, err
			}
			// d(a/b)/db = -out/b
			t, err := binaryRaw(binMul, ga, od)
			if err != nil {
				return nil, err
			}
			if gb, err = scaleRaw("div", t, -1, 0); err != nil {
				return nil, err
			}
		}
		if ga, err = sumTo(ga, ad.shape); err != nil {
			return nil, err
		}
		if gb, err = sumTo(gb, bd.shape); err != nil {
			return nil, err
		}
		return []*Tensor{ga, gb}, nil
	}), nil
}

// Add returns a+b with broadcasting.
func Add(a, b *Tensor) (*Tensor, error) { return binOp(binAdd, a, b) }

// Sub returns a-b with broadcasting.
func Sub(a, b *Tensor) (*Tensor, error) { return binOp(binSub, a, b) }

// Mul returns a*b elementwise with broadcasting.
func Mul(a, b *Tensor) (*Tensor, error) { return binOp(binMul, a, b) }

// Div returns a/b elementwise with broadcasting.
func Div(a, b *Tensor) (*Tensor, error) { return binOp(binDiv, a, b) }

// scaleRaw returns x*s + c without autograd.
func scaleRaw(op string, x *Tensor, s, c float32) (*Tensor, error) {
	return mapRaw(op, x, func(v float32) float32 { return v*s + c })
}

// mapRaw applies f elementwise into a new contiguous tensor.
func mapRaw(op string, x *Tensor, f func(float32) float32) (*Tensor, error) {
	xd, err := x.data(op)
	if err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(x), x.Device(), Float32, x.shape)
	if err != nil {
		return nil, err
	}
	dst := out.st.f32
	parallelFor(len(dst), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = f(xd[i])
		}
	})
	return out, nil
}

// zipRaw computes f(x[i], y[i], g[i]) for three same-shaped tensors.
func zipRaw(op string, x, y, g *Tensor, f func(x, y, g float32) float32) (*Tensor, error) {
	xd, err := x.data(op)
	if err != nil {
		return nil, err
	}
	yd, err := y.data(op)
	if err != nil {
		return nil, err
	}
	gd, err := g.data(op)
	if err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(g, x), g.Device(), Float32, g.shape)
	if err != nil {
		return nil, err
	}
	dst := out.st.f32
	parallelFor(len(dst), 1<<14, func(lo, hi int) {
		for i := lo; i < hi; i++ {
			dst[i] = f(xd[i], yd[i], gd[i])
		}
	})
	return out, nil
}

// unary applies f with derivative df(x, y) (y = f(x)) and records autograd.
func unary(op string, x *Tensor, f func(float32) float32, df func(x, y float32) float32) (*Tensor, error) {
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if out, ok, err := cudaUnary(op, x); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return recordUnary(op, x, out, df), nil
	}
	out, err := mapRaw(op, x, f)
	if err != nil {
		return nil, err
	}
	return recordUnary(op, x, out, df), nil
}

func recordUnary(op string, x, out *Tensor, df func(x, y float32) float32) *Tensor {
	xd, od := x.Detach(), out.Detach()
	return record(out, op, []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := zipRaw(op, xd, od, g, func(x, y, g float32) float32 { return g * df(x, y) })
		return []*Tensor{gx}, err
	})
}

func exp32(x float32) float32  { return float32(math.Exp(float64(x))) }
func tanh32(x float32) float32 { return float32(math.Tanh(float64(x))) }
func sigmoid32(x float32) float32 {
	return float32(1 / (1 + math.Exp(-float64(x))))
}

// Exp returns e^x elementwise.
func Exp(x *Tensor) (*Tensor, error) {
	return unary("exp", x, exp32, func(_, y float32) float32 { return y })
}

// Log returns the natural logarithm elementwise.
func Log(x *Tensor) (*Tensor, error) {
	return unary("log", x, func(v float32) float32 { return float32(math.Log(float64(v))) },
		func(x, _ float32) float32 { return 1 / x })
}

// Tanh returns tanh(x) elementwise.
func Tanh(x *Tensor) (*Tensor, error) {
	return unary("tanh", x, tanh32, func(_, y float32) float32 { return 1 - y*y })
}

// Sigmoid returns 1/(1+e^-x) elementwise.
func Sigmoid(x *Tensor) (*Tensor, error) {
	return unary("sigmoid", x, sigmoid32, func(_, y float32) float32 { return y * (1 - y) })
}

// ReLU returns max(x, 0) elementwise.
func ReLU(x *Tensor) (*Tensor, error) {
	return unary("relu", x, func(v float32) float32 { return max(v, 0) },
		func(x, _ float32) float32 {
			if x > 0 {
				return 1
			}
			return 0
		})
}

// GELU returns x·Φ(x) with the exact (erf) form.
func GELU(x *Tensor) (*Tensor, error) {
	return unary("gelu", x, func(v float32) float32 {
		return float32(0.5 * float64(v) * (1 + math.Erf(float64(v)/math.Sqrt2)))
	}, func(x, _ float32) float32 {
		v := float64(x)
		cdf := 0.5 * (1 + math.Erf(v/math.Sqrt2))
		pdf := math.Exp(-0.5*v*v) / math.Sqrt(2*math.Pi)
		return float32(cdf + v*pdf)
	})
}

// SiLU returns x·sigmoid(x) elementwise.
func SiLU(x *Tensor) (*Tensor, error) {
	return unary("silu", x, func(v float32) float32 { return v * sigmoid32(v) },
		func(x, _ float32) float32 {
			s := sigmoid32(x)
			return s * (1 + x*(1-s))
		})
}

// Sqrt returns the square root elementwise.
func Sqrt(x *Tensor) (*Tensor, error) {
	return unary("sqrt", x, func(v float32) float32 { return float32(math.Sqrt(float64(v))) },
		func(_, y float32) float32 { return 0.5 / y })
}

// Scale returns x·s + c elementwise (affine with scalars).
func Scale(x *Tensor, s, c float32) (*Tensor, error) {
	if err := x.check("scale", Float32); err != nil {
		return nil, err
	}
	out, err := scaleRaw("scale", x, s, c)
	if err != nil {
		return nil, err
	}
	return record(out, "scale", []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := scaleRaw("scale", g, s, 0)
		return []*Tensor{gx}, err
	}), nil
}

// Neg returns -x.
func Neg(x *Tensor) (*Tensor, error) { return Scale(x, -1, 0) }
