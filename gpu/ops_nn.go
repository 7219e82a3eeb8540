package gpu

import (
	"fmt"
	"math"
)

// rowsOf splits a shape into rows of its last dim.
func rowsOf(shape []int) (rows, d int) {
	if len(shape) == 0 {
		return 1, 1
	}
	d = shape[len(shape)-1]
	n, _ := numel(shape)
	if d == 0 {
		return 0, 0
	}
	return n / d, d
}

func checkVec(op, name string, v *Tensor, d int, x *Tensor) error {
	if v == nil {
		return nil
	}
	if err := v.check(op, Float32); err != nil {
		return err
	}
	if v.Rank() != 1 || v.shape[0] != d {
		return shapeErr(op, fmt.Sprintf("%s must be [%d]", name, d), x, v)
	}
	return nil
}

func optData(op string, v *Tensor) ([]float32, error) {
	if v == nil {
		return nil, nil
	}
	return v.data(op)
}

// LayerNorm normalises x over its last dim to zero mean and unit variance, then scales by
// weight and shifts by bias ([D] each; either may be nil).
func LayerNorm(x, weight, bias *Tensor, eps float32) (*Tensor, error) {
	return norm("layer_norm", x, weight, bias, eps, false)
}

// RMSNorm divides x by the root mean square over its last dim, then scales by weight ([D] or
// nil).
func RMSNorm(x, weight *Tensor, eps float32) (*Tensor, error) {
	return norm("rms_norm", x, weight, nil, eps, true)
}

func norm(op string, x, w, b *Tensor, eps float32, rms bool) (*Tensor, error) {
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if x.Rank() == 0 {
		return nil, shapeErr(op, "input needs a last dim", x)
	}
	rows, d := rowsOf(x.shape)
	if err := checkVec(op, "weight", w, d, x); err != nil {
		return nil, err
	}
	if err := checkVec(op, "bias", b, d, x); err != nil {
		return nil, err
	}
	xd, err := x.data(op)
	if err != nil {
		return nil, err
	}
	wd, err := optData(op, w)
	if err != nil {
		return nil, err
	}
	bd, err := optData(op, b)
	if err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(x, w, b), x.Device(), Float32, x.shape)
	if err != nil {
		return nil, err
	}
	mean := make([]float32, rows)
	rstd := make([]float32, rows)
	y := out.st.f32
	parallelFor(rows, max(1, 2048/max(d, 1)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			xr, yr := xd[r*d:(r+1)*d], y[r*d:(r+1)*d]
			var mu, ss float64
			if !rms {
				for _, v := range xr {
					mu += float64(v)
				}
				mu /= float64(d)
			}
			for _, v := range xr {
				c := float64(v) - mu
				ss += c * c
			}
			rs := float32(1 / math.Sqrt(ss/float64(d)+float64(eps)))
			mean[r], rstd[r] = float32(mu), rs
			m := float32(mu)
			for i, v := range xr {
				h := (v - m) * rs
				if wd != nil {
					h *= wd[i]
				}
				if bd != nil {
					h += bd[i]
				}
				yr[i] = h
			}
		}
	})
	inputs := []*Tensor{x, w, b}
	return record(out, op, inputs, func(g *Tensor) ([]*Tensor, error) {
		gd, err := g.data(op)
		if err != nil {
			return nil, err
		}
		gx, err := alloc(op, arenaOf(g), g.Device(), Float32, g.shape)
		if err != nil {
			return nil, err
		}
		dx := gx.st.f32
		parallelFor(rows, max(1, 2048/max(d, 1)), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				xr, gr, dr := xd[r*d:(r+1)*d], gd[r*d:(r+1)*d], dx[r*d:(r+1)*d]
				m, rs := mean[r], rstd[r]
				// dy = g*w; xhat = (x-m)*rs
				var sdy, sdyx float64
				for i := range xr {
					dy := gr[i]
					if wd != nil {
						dy *= wd[i]
					}
					xh := (xr[i] - m) * rs
					sdy += float64(dy)
					sdyx += float64(dy) * float64(xh)
				}
				mdy, mdyx := float32(sdy/float64(d)), float32(sdyx/float64(d))
				if rms {
					mdy = 0
				}
				for i := range xr {
					dy := gr[i]
					if wd != nil {
						dy *= wd[i]
					}
					xh := (xr[i] - m) * rs
					dr[i] = rs * (dy - mdy - xh*mdyx)
				}
			}
		})
		grads := []*Tensor{gx, nil, nil}
		if w != nil && w.requiresGrad {
			gw, err := alloc(op, arenaOf(g), g.Device(), Float32, []int{d})
			if err != nil {
				return nil, err
			}
			acc := make([]float64, d)
			for r := 0; r < rows; r++ {
				m, rs := mean[r], rstd[r]
				for i := 0; i < d; i++ {
					acc[i] += float64(gd[r*d+i]) * float64((xd[r*d+i]-m)*rs)
				}
			}
			for i, v := range acc {
				gw.st.f32[i] = float32(v)
			}
			grads[1] = gw
		}
		if b != nil && b.requiresGrad {
			gb, err := alloc(op, arenaOf(g), g.Device(), Float32, []int{d})
			if err != nil {
				return nil, err
			}
			acc := make([]float64, d)
			for r := 0; r < rows; r++ {
				for i := 0; i < d; i++ {
					acc[i] += float64(gd[r*d+i])
				}
			}
			for i, v := range acc {
				gb.st.f32[i] = float32(v)
			}
			grads[2] = gb
		}
		return grads, nil
	}), nil
}

// Embedding gathers rows of weight [V, D] at integer indices of any shape: the result has shape
// indices.shape + [D]. Indices outside [0, V) are an error.
func Embedding(weight, indices *Tensor) (*Tensor, error) {
	const op = "embedding"
	if err := weight.check(op, Float32); err != nil {
		return nil, err
	}
	if weight.Rank() != 2 {
		return nil, shapeErr(op, "weight must be [vocab, dim]", weight)
	}
	idx, err := indices.indices(op)
	if err != nil {
		return nil, err
	}
	v, d := weight.shape[0], weight.shape[1]
	for i, ix := range idx {
		if ix < 0 || ix >= int64(v) {
			return nil, &OpError{Op: op, Shapes: [][]int{weight.Shape(), indices.Shape()}, Err: ErrArgument,
				Msg: fmt.Sprintf("index %d at position %d outside [0, %d)", ix, i, v)}
		}
	}
	wd, err := weight.data(op)
	if err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(weight, indices), weight.Device(), Float32, append(indices.Shape(), d))
	if err != nil {
		return nil, err
	}
	for i, ix := range idx {
		copy(out.st.f32[i*d:(i+1)*d], wd[int(ix)*d:int(ix+1)*d])
	}
	return record(out, op, []*Tensor{weight, indices}, func(g *Tensor) ([]*Tensor, error) {
		gd, err := g.data(op)
		if err != nil {
			return nil, err
		}
		gw, err := alloc(op, arenaOf(g), g.Device(), Float32, []int{v, d})
		if err != nil {
			return nil, err
		}
		for i, ix := range idx {
			row := gw.st.f32[int(ix)*d : int(ix+1)*d]
			for j, x := range gd[i*d : (i+1)*d] {
				row[j] += x
			}
		}
		return []*Tensor{gw, nil}, nil
	}), nil
}

// RoPE applies rotary position embedding to x [..., T, D] (D even): the pair (x[i], x[i+D/2])
// at position p = pos0 + t turns by angle p·base^(-2i/D). base is usually 10000.
func RoPE(x *Tensor, pos0 int, base float64) (*Tensor, error) {
	const op = "rope"
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if x.Rank() < 2 || x.shape[x.Rank()-1]%2 != 0 {
		return nil, shapeErr(op, "input must be [..., T, D] with D even", x)
	}
	if base <= 0 || pos0 < 0 {
		return nil, opErr(op, ErrArgument, "base %v and pos0 %d must be positive", base, pos0)
	}
	t, d := x.shape[x.Rank()-2], x.shape[x.Rank()-1]
	h := d / 2
	cos, sin := make([]float32, t*h), make([]float32, t*h)
	for p := 0; p < t; p++ {
		for i := 0; i < h; i++ {
			ang := float64(pos0+p) * math.Pow(base, -2*float64(i)/float64(d))
			cos[p*h+i], sin[p*h+i] = float32(math.Cos(ang)), float32(math.Sin(ang))
		}
	}
	rotate := func(src *Tensor, sign float32) (*Tensor, error) {
		sd, err := src.data(op)
		if err != nil {
			return nil, err
		}
		out, err := alloc(op, arenaOf(src), src.Device(), Float32, src.shape)
		if err != nil {
			return nil, err
		}
		rows := len(sd) / max(d, 1)
		dst := out.st.f32
		parallelFor(rows, max(1, 2048/max(d, 1)), func(lo, hi int) {
			for r := lo; r < hi; r++ {
				p := r % t
				xr, yr := sd[r*d:(r+1)*d], dst[r*d:(r+1)*d]
				for i := 0; i < h; i++ {
					c, s := cos[p*h+i], sign*sin[p*h+i]
					a, b := xr[i], xr[i+h]
					yr[i] = a*c - b*s
					yr[i+h] = a*s + b*c
				}
			}
		})
		return out, nil
	}
	out, err := rotate(x, 1)
	if err != nil {
		return nil, err
	}
	return record(out, op, []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := rotate(g, -1)
		return []*Tensor{gx}, err
	}), nil
}

// CrossEntropy is the mean negative log-likelihood of integer labels [...] under logits
// [..., C]. Negative labels are ignored (padding); labels >= C are an error.
func CrossEntropy(logits, labels *Tensor) (*Tensor, error) {
	const op = "cross_entropy"
	if err := logits.check(op, Float32); err != nil {
		return nil, err
	}
	lab, err := labels.indices(op)
	if err != nil {
		return nil, err
	}
	if logits.Rank() < 1 || !sameShape(logits.shape[:logits.Rank()-1], labels.shape) {
		return nil, shapeErr(op, "logits must be labels.shape + [classes]", logits, labels)
	}
	rows, c := rowsOf(logits.shape)
	counted := 0
	for i, l := range lab {
		if l >= int64(c) {
			return nil, &OpError{Op: op, Shapes: [][]int{logits.Shape(), labels.Shape()}, Err: ErrArgument,
				Msg: fmt.Sprintf("label %d at position %d outside [0, %d)", l, i, c)}
		}
		if l >= 0 {
			counted++
		}
	}
	xd, err := logits.data(op)
	if err != nil {
		return nil, err
	}
	logp := make([]float32, len(xd))
	softmaxRows(logp, xd, c, true)
	var loss float64
	for r := 0; r < rows; r++ {
		if lab[r] >= 0 {
			loss -= float64(logp[r*c+int(lab[r])])
		}
	}
	if counted > 0 {
		loss /= float64(counted)
	}
	out, err := alloc(op, arenaOf(logits), logits.Device(), Float32, []int{})
	if err != nil {
		return nil, err
	}
	out.st.f32[0] = float32(loss)
	lshape := logits.Shape()
	return record(out, op, []*Tensor{logits, labels}, func(g *Tensor) ([]*Tensor, error) {
		gv, err := g.Item()
		if err != nil {
			return nil, err
		}
		gx, err := alloc(op, arenaOf(g), g.Device(), Float32, lshape)
		if err != nil {
			return nil, err
		}
		if counted == 0 {
			return []*Tensor{gx, nil}, nil
		}
		scale := gv / float32(counted)
		for r := 0; r < rows; r++ {
			if lab[r] < 0 {
				continue
			}
			row := gx.st.f32[r*c : (r+1)*c]
			for j := range row {
				row[j] = float32(math.Exp(float64(logp[r*c+j]))) * scale
			}
			row[lab[r]] -= scale
		}
		return []*Tensor{gx, nil}, nil
	}), nil
}

// dropKeep decides, from seed and element index alone, whether dropout keeps an element: the
// same seed drops the same elements on every backend.
func dropKeep(seed uint64, i int, p float32) bool {
	z := seed + uint64(i)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	u := float32(z>>40) / (1 << 24)
	return u >= p
}

// Dropout zeroes each element with probability p and scales the rest by 1/(1-p). The elements
// dropped depend only on seed and their row-major index.
func Dropout(x *Tensor, p float32, seed uint64) (*Tensor, error) {
	const op = "dropout"
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if !(p >= 0 && p < 1) {
		return nil, opErr(op, ErrArgument, "probability %v outside [0, 1)", p)
	}
	scale := 1 / (1 - p)
	apply := func(src *Tensor) (*Tensor, error) {
		sd, err := src.data(op)
		if err != nil {
			return nil, err
		}
		out, err := alloc(op, arenaOf(src), src.Device(), Float32, src.shape)
		if err != nil {
			return nil, err
		}
		dst := out.st.f32
		parallelFor(len(dst), 1<<14, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				if dropKeep(seed, i, p) {
					dst[i] = sd[i] * scale
				}
			}
		})
		return out, nil
	}
	out, err := apply(x)
	if err != nil {
		return nil, err
	}
	return record(out, op, []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := apply(g)
		return []*Tensor{gx}, err
	}), nil
}

// Conv2dParams are a convolution's stride and zero padding, the same along both axes.
type Conv2dParams struct {
	Stride, Padding int
}

// Conv2d convolves x [N, C, H, W] with weight [O, C, KH, KW] and adds bias [O] (may be nil):
// im2col followed by one batched matmul.
func Conv2d(x, weight, bias *Tensor, p Conv2dParams) (*Tensor, error) {
	const op = "conv2d"
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if err := weight.check(op, Float32); err != nil {
		return nil, err
	}
	if p.Stride == 0 {
		p.Stride = 1
	}
	if x.Rank() != 4 || weight.Rank() != 4 || x.shape[1] != weight.shape[1] {
		return nil, shapeErr(op, "want x [N, C, H, W] and weight [O, C, KH, KW]", x, weight)
	}
	if p.Stride < 1 || p.Padding < 0 {
		return nil, opErr(op, ErrArgument, "stride %d and padding %d", p.Stride, p.Padding)
	}
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	o, kh, kw := weight.shape[0], weight.shape[2], weight.shape[3]
	oh := (h+2*p.Padding-kh)/p.Stride + 1
	ow := (w+2*p.Padding-kw)/p.Stride + 1
	if oh <= 0 || ow <= 0 || kh <= 0 || kw <= 0 {
		return nil, shapeErr(op, "kernel larger than padded input", x, weight)
	}
	if err := checkVec(op, "bias", bias, o, x); err != nil {
		return nil, err
	}
	g := convGeom{n, c, h, w, kh, kw, oh, ow, p.Stride, p.Padding}
	cols, err := im2col(x, g)
	if err != nil {
		return nil, err
	}
	wm, err := Reshape(weight, o, c*kh*kw)
	if err != nil {
		return nil, err
	}
	y, err := MatMul(wm, cols) // [N, O, OH*OW]
	if err != nil {
		return nil, err
	}
	if y, err = Reshape(y, n, o, oh, ow); err != nil {
		return nil, err
	}
	if bias == nil {
		return y, nil
	}
	b4, err := Reshape(bias, 1, o, 1, 1)
	if err != nil {
		return nil, err
	}
	return Add(y, b4)
}

type convGeom struct{ n, c, h, w, kh, kw, oh, ow, stride, pad int }

// im2col lays out x's receptive fields as [N, C*KH*KW, OH*OW]; its gradient is col2im.
func im2col(x *Tensor, g convGeom) (*Tensor, error) {
	const op = "im2col"
	xd, err := x.data(op)
	if err != nil {
		return nil, err
	}
	ck, l := g.c*g.kh*g.kw, g.oh*g.ow
	out, err := alloc(op, arenaOf(x), x.Device(), Float32, []int{g.n, ck, l})
	if err != nil {
		return nil, err
	}
	cd := out.st.f32
	parallelFor(g.n*g.c, 1, func(lo, hi int) {
		for nc := lo; nc < hi; nc++ {
			b, ch := nc/g.c, nc%g.c
			img := xd[(b*g.c+ch)*g.h*g.w:]
			for ki := 0; ki < g.kh; ki++ {
				for kj := 0; kj < g.kw; kj++ {
					row := cd[(b*ck+(ch*g.kh+ki)*g.kw+kj)*l:]
					for oy := 0; oy < g.oh; oy++ {
						iy := oy*g.stride - g.pad + ki
						for ox := 0; ox < g.ow; ox++ {
							ix := ox*g.stride - g.pad + kj
							if iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
								row[oy*g.ow+ox] = img[iy*g.w+ix]
							}
						}
					}
				}
			}
		}
	})
	return record(out, op, []*Tensor{x}, func(gr *Tensor) ([]*Tensor, error) {
		gd, err := gr.data(op)
		if err != nil {
			return nil, err
		}
		gx, err := alloc(op, arenaOf(gr), gr.Device(), Float32, []int{g.n, g.c, g.h, g.w})
		if err != nil {
			return nil, err
		}
		dst := gx.st.f32
		parallelFor(g.n*g.c, 1, func(lo, hi int) {
			for nc := lo; nc < hi; nc++ {
				b, ch := nc/g.c, nc%g.c
				img := dst[(b*g.c+ch)*g.h*g.w:]
				for ki := 0; ki < g.kh; ki++ {
					for kj := 0; kj < g.kw; kj++ {
						row := gd[(b*ck+(ch*g.kh+ki)*g.kw+kj)*l:]
						for oy := 0; oy < g.oh; oy++ {
							iy := oy*g.stride - g.pad + ki
							for ox := 0; ox < g.ow; ox++ {
								ix := ox*g.stride - g.pad + kj
								if iy >= 0 && iy < g.h && ix >= 0 && ix < g.w {
									img[iy*g.w+ix] += row[oy*g.ow+ox]
								}
							}
						}
					}
				}
			}
		})
		return []*Tensor{gx}, nil
	}), nil
}

// MaxPool2d takes the maximum over k x k windows of x [N, C, H, W] with the given stride (no
// padding); the gradient goes to the first maximum of each window.
func MaxPool2d(x *Tensor, k, stride int) (*Tensor, error) {
	const op = "max_pool2d"
	if err := x.check(op, Float32); err != nil {
		return nil, err
	}
	if stride == 0 {
		stride = k
	}
	if x.Rank() != 4 || k < 1 || stride < 1 || x.shape[2] < k || x.shape[3] < k {
		return nil, shapeErr(op, fmt.Sprintf("want [N, C, H, W] with H, W >= %d and stride >= 1", k), x)
	}
	n, c, h, w := x.shape[0], x.shape[1], x.shape[2], x.shape[3]
	oh, ow := (h-k)/stride+1, (w-k)/stride+1
	xd, err := x.data(op)
	if err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(x), x.Device(), Float32, []int{n, c, oh, ow})
	if err != nil {
		return nil, err
	}
	arg := make([]int32, n*c*oh*ow)
	for p := 0; p < n*c; p++ {
		img := xd[p*h*w : (p+1)*h*w]
		for oy := 0; oy < oh; oy++ {
			for ox := 0; ox < ow; ox++ {
				best, at := float32(math.Inf(-1)), -1
				for i := 0; i < k; i++ {
					for j := 0; j < k; j++ {
						ix := (oy*stride+i)*w + ox*stride + j
						if at < 0 || img[ix] > best {
							best, at = img[ix], ix
						}
					}
				}
				o := (p*oh+oy)*ow + ox
				out.st.f32[o], arg[o] = best, int32(at)
			}
		}
	}
	return record(out, op, []*Tensor{x}, func(g *Tensor) ([]*Tensor, error) {
		gd, err := g.data(op)
		if err != nil {
			return nil, err
		}
		gx, err := alloc(op, arenaOf(g), g.Device(), Float32, []int{n, c, h, w})
		if err != nil {
			return nil, err
		}
		per := oh * ow
		for o, a := range arg {
			gx.st.f32[(o/per)*h*w+int(a)] += gd[o]
		}
		return []*Tensor{gx}, nil
	}), nil
}
