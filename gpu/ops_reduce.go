package gpu

import (
	"fmt"
	"math"
	"slices"
)

type redKind uint8

const (
	redSum redKind = iota
	redMean
	redMax
)

// normAxes validates axes against rank (negative counts from the end); nil or empty means all.
func normAxes(op string, axes []int, rank int) ([]int, error) {
	if len(axes) == 0 {
		out := make([]int, rank)
		for i := range out {
			out[i] = i
		}
		return out, nil
	}
	seen := make([]bool, rank)
	out := make([]int, 0, len(axes))
	for _, a := range axes {
		if a < 0 {
			a += rank
		}
		if a < 0 || a >= rank {
			return nil, opErr(op, ErrArgument, "axis %d out of range for rank %d", a, rank)
		}
		if seen[a] {
			return nil, opErr(op, ErrArgument, "axis %d repeated", a)
		}
		seen[a] = true
		out = append(out, a)
	}
	slices.Sort(out)
	return out, nil
}

// reduction is the permuted layout of a reduce: kept dims first, reduced dims last.
type reduction struct {
	perm     []int // permutation of x's dims: kept then reduced
	outShape []int // keepdim or not
	keepDim  []int // output shape with reduced dims as 1
	rows, r  int   // number of outputs, elements reduced per output
	data     []float32
}

func plan(op string, x *Tensor, axes []int, keepdim bool) (*reduction, error) {
	ax, err := normAxes(op, axes, x.Rank())
	if err != nil {
		return nil, err
	}
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if err := x.syncHost(); err != nil {
		return nil, err
	}
	red := make([]bool, x.Rank())
	for _, a := range ax {
		red[a] = true
	}
	p := &reduction{rows: 1, r: 1}
	var redPerm []int
	for i, d := range x.shape {
		if red[i] {
			redPerm = append(redPerm, i)
			p.r *= d
			p.keepDim = append(p.keepDim, 1)
			if keepdim {
				p.outShape = append(p.outShape, 1)
			}
		} else {
			p.perm = append(p.perm, i)
			p.rows *= d
			p.keepDim = append(p.keepDim, d)
			p.outShape = append(p.outShape, d)
		}
	}
	p.perm = append(p.perm, redPerm...)
	shape, strides := make([]int, len(p.perm)), make([]int, len(p.perm))
	for i, d := range p.perm {
		shape[i], strides[i] = x.shape[d], x.strides[d]
	}
	pv := x.view(shape, strides, x.off)
	if p.data, err = pv.data(op); err != nil {
		return nil, err
	}
	if p.outShape == nil {
		p.outShape = []int{}
	}
	return p, nil
}

// reduceRaw sums, averages or takes the max over axes without autograd.
func reduceRaw(op string, kind redKind, x *Tensor, axes []int, keepdim bool) (*Tensor, error) {
	out, _, _, err := reduceArg(op, kind, x, axes, keepdim)
	return out, err
}

func reduceArg(op string, kind redKind, x *Tensor, axes []int, keepdim bool) (*Tensor, *reduction, []int32, error) {
	p, err := plan(op, x, axes, keepdim)
	if err != nil {
		return nil, nil, nil, err
	}
	if kind == redMax && p.r == 0 {
		return nil, nil, nil, shapeErr(op, "max over an empty dimension", x)
	}
	out, err := alloc(op, arenaOf(x), x.Device(), Float32, p.outShape)
	if err != nil {
		return nil, nil, nil, err
	}
	var arg []int32
	if kind == redMax {
		arg = make([]int32, p.rows)
	}
	dst, r := out.st.f32, p.r
	parallelFor(p.rows, max(1, 4096/max(r, 1)), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			row := p.data[i*r : (i+1)*r]
			switch kind {
			case redSum, redMean:
				var s float64
				for _, v := range row {
					s += float64(v)
				}
				if kind == redMean && r > 0 {
					s /= float64(r)
				}
				dst[i] = float32(s)
			case redMax:
				best, at := row[0], 0
				for j, v := range row {
					if v > best || (v != v && best == best) {
						best, at = v, j
					}
				}
				dst[i], arg[i] = best, int32(at)
			}
		}
	})
	return out, p, arg, nil
}

// broadcastTo materialises g (whose shape broadcasts to shape) as a contiguous tensor.
func broadcastTo(op string, g *Tensor, shape []int) (*Tensor, error) {
	if _, ok := broadcastShape(g.shape, shape); !ok || len(g.shape) > len(shape) {
		return nil, shapeErr(op, fmt.Sprintf("cannot broadcast to %v", shape), g)
	}
	v := g.view(append([]int(nil), shape...), bstrides(g, shape), g.off)
	return contiguousCopy(op, v)
}

func reduce(op string, kind redKind, x *Tensor, axes []int, keepdim bool) (*Tensor, error) {
	out, p, arg, err := reduceArg(op, kind, x, axes, keepdim)
	if err != nil {
		return nil, err
	}
	xshape := x.Shape()
	return record(out, op, []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gk, err := reshapeRaw(op, g, p.keepDim)
		if err != nil {
			return nil, err
		}
		switch kind {
		case redSum, redMean:
			gx, err := broadcastTo(op, gk, xshape)
			if err != nil || kind == redSum || p.r == 0 {
				return []*Tensor{gx}, err
			}
			gx, err = scaleRaw(op, gx, 1/float32(p.r), 0)
			return []*Tensor{gx}, err
		}
		// max: route each output's gradient to the element that won.
		gd, err := g.data(op)
		if err != nil {
			return nil, err
		}
		pshape := make([]int, len(p.perm))
		for i, d := range p.perm {
			pshape[i] = xshape[d]
		}
		buf, err := alloc(op, arenaOf(g), g.Device(), Float32, pshape)
		if err != nil {
			return nil, err
		}
		for i, a := range arg {
			buf.st.f32[i*p.r+int(a)] = gd[i]
		}
		// buf is x permuted; view it back in x's order.
		pst := contiguousStrides(pshape)
		st := make([]int, len(xshape))
		for i, d := range p.perm {
			st[d] = pst[i]
		}
		gx, err := contiguousCopy(op, buf.view(xshape, st, 0))
		return []*Tensor{gx}, err
	}), nil
}

// Sum adds elements over axes (nil: all). keepdim keeps reduced dims with size 1.
func Sum(x *Tensor, axes []int, keepdim bool) (*Tensor, error) {
	return reduce("sum", redSum, x, axes, keepdim)
}

// Mean averages elements over axes (nil: all).
func Mean(x *Tensor, axes []int, keepdim bool) (*Tensor, error) {
	return reduce("mean", redMean, x, axes, keepdim)
}

// Max takes the largest element over axes (nil: all); the gradient goes to the first maximum.
func Max(x *Tensor, axes []int, keepdim bool) (*Tensor, error) {
	return reduce("max", redMax, x, axes, keepdim)
}

// softmaxRows computes (log-)softmax over the last dim of contiguous data.
func softmaxRows(dst, src []float32, d int, logs bool) {
	if d == 0 {
		return
	}
	parallelFor(len(src)/d, max(1, 4096/d), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x, y := src[r*d:(r+1)*d], dst[r*d:(r+1)*d]
			m := x[0]
			for _, v := range x {
				m = max(m, v)
			}
			var s float64
			for i, v := range x {
				e := math.Exp(float64(v - m))
				s += e
				y[i] = float32(e)
			}
			if logs {
				ls := float32(math.Log(s))
				for i, v := range x {
					y[i] = v - m - ls
				}
			} else {
				inv := float32(1 / s)
				for i := range y {
					y[i] *= inv
				}
			}
		}
	})
}

func softmax(op string, x *Tensor, axis int, logs bool) (*Tensor, error) {
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if x.Rank() == 0 {
		return nil, shapeErr(op, "softmax of a scalar", x)
	}
	last := x.Rank() - 1
	if axis < 0 {
		axis += x.Rank()
	}
	if axis < 0 || axis > last {
		return nil, opErr(op, ErrArgument, "axis %d out of range for rank %d", axis, x.Rank())
	}
	if axis != last {
		xt, err := Transpose(x, axis, last)
		if err != nil {
			return nil, err
		}
		y, err := softmax(op, xt, last, logs)
		if err != nil {
			return nil, err
		}
		return Transpose(y, axis, last)
	}
	xd, err := x.data(op)
	if err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(x), x.Device(), Float32, x.shape)
	if err != nil {
		return nil, err
	}
	d := x.shape[last]
	softmaxRows(out.st.f32, xd, d, logs)
	od := out.Detach()
	return record(out, op, []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gd, err := g.data(op)
		if err != nil {
			return nil, err
		}
		gx, err := alloc(op, arenaOf(g), g.Device(), Float32, g.shape)
		if err != nil {
			return nil, err
		}
		y, dx := od.st.f32, gx.st.f32
		parallelFor(len(y)/max(d, 1), max(1, 4096/max(d, 1)), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				yr, gr, xr := y[r*d:(r+1)*d], gd[r*d:(r+1)*d], dx[r*d:(r+1)*d]
				var s float64
				if logs {
					for _, v := range gr {
						s += float64(v)
					}
					for i := range xr {
						xr[i] = gr[i] - float32(math.Exp(float64(yr[i])))*float32(s)
					}
					continue
				}
				for i := range gr {
					s += float64(gr[i]) * float64(yr[i])
				}
				for i := range xr {
					xr[i] = yr[i] * (gr[i] - float32(s))
				}
			}
		})
		return []*Tensor{gx}, nil
	}), nil
}

// Softmax normalises exp(x) over axis so each slice sums to one.
func Softmax(x *Tensor, axis int) (*Tensor, error) { return softmax("softmax", x, axis, false) }

// LogSoftmax is log(Softmax(x, axis)), computed stably.
func LogSoftmax(x *Tensor, axis int) (*Tensor, error) {
	return softmax("log_softmax", x, axis, true)
}
