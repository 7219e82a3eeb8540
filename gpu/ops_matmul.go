package gpu

import (
	"fmt"

	"github.com/lumenflow/lumen/gpu/internal/blas"
)

func bstridesOf(shape, strides, target []int) []int {
	out := make([]int, len(target))
	k := len(target) - len(shape)
	for i := range shape {
		if shape[i] != 1 {
			out[k+i] = strides[i]
		}
	}
	return out
}

// swapLast returns a view of t with its last two dims swapped.
func swapLast(t *Tensor) *Tensor {
	r := len(t.shape)
	sh, st := t.Shape(), t.Strides()
	sh[r-1], sh[r-2] = sh[r-2], sh[r-1]
	st[r-1], st[r-2] = st[r-2], st[r-1]
	return t.view(sh, st, t.off)
}

func matmulRaw(op string, a, b *Tensor) (*Tensor, error) {
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
	ra, rb := a.Rank(), b.Rank()
	if ra < 2 || rb < 2 {
		return nil, shapeErr(op, "operands need at least 2 dims", a, b)
	}
	m, k, k2, n := a.shape[ra-2], a.shape[ra-1], b.shape[rb-2], b.shape[rb-1]
	if k != k2 {
		return nil, shapeErr(op, fmt.Sprintf("inner dims %d and %d differ", k, k2), a, b)
	}
	batch, ok := broadcastShape(a.shape[:ra-2], b.shape[:rb-2])
	if !ok {
		return nil, shapeErr(op, "batch dims do not broadcast", a, b)
	}
	outShape := append(append([]int(nil), batch...), m, n)
	if out, ok, err := cudaMatmul(a, b, batch, m, n, k); ok || err != nil {
		return out, err
	}
	if err := a.syncHost(); err != nil {
		return nil, err
	}
	if err := b.syncHost(); err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(a, b), dev, Float32, outShape)
	if err != nil {
		return nil, err
	}
	nb, _ := numel(batch)
	if m*n == 0 || nb == 0 {
		return out, nil
	}
	// A plain 2-D right operand and a left operand whose batch and row dims are one run of rows:
	// one large product instead of many small ones.
	if rb == 2 && ra > 2 && foldable(a) {
		am := blas.Matrix{Data: a.st.f32, Off: a.off, RS: a.strides[ra-2], CS: a.strides[ra-1]}
		bm := blas.Matrix{Data: b.st.f32, Off: b.off, RS: b.strides[0], CS: b.strides[1]}
		sgemm(Threads(), nb*m, n, k, am, bm, out.st.f32, n, false)
		return out, nil
	}
	sa := bstridesOf(a.shape[:ra-2], a.strides[:ra-2], batch)
	sb := bstridesOf(b.shape[:rb-2], b.strides[:rb-2], batch)
	one := func(bi, threads int) {
		oa, ob := a.off, b.off
		rem := bi
		for d := len(batch) - 1; d >= 0; d-- {
			i := rem % batch[d]
			rem /= batch[d]
			oa += i * sa[d]
			ob += i * sb[d]
		}
		am := blas.Matrix{Data: a.st.f32, Off: oa, RS: a.strides[ra-2], CS: a.strides[ra-1]}
		bm := blas.Matrix{Data: b.st.f32, Off: ob, RS: b.strides[rb-2], CS: b.strides[rb-1]}
		sgemm(threads, m, n, k, am, bm, out.st.f32[bi*m*n:], n, false)
	}
	th := Threads()
	if nb >= th && th > 1 && m*n*k < 1<<21 {
		parallelFor(nb, 1, func(lo, hi int) {
			for bi := lo; bi < hi; bi++ {
				one(bi, 1)
			}
		})
	} else {
		for bi := 0; bi < nb; bi++ {
			one(bi, th)
		}
	}
	return out, nil
}

// foldable reports whether a's batch dims and row dim form one evenly strided run of rows.
func foldable(a *Tensor) bool {
	r := a.Rank()
	for d := 0; d < r-2; d++ {
		if a.shape[d] != 1 && a.strides[d] != a.strides[r-2]*prod(a.shape[d+1:r-1]) {
			return false
		}
	}
	return true
}

func prod(s []int) int {
	n := 1
	for _, d := range s {
		n *= d
	}
	return n
}

// MatMul multiplies the last two dims of a [..., M, K] and b [..., K, N]; leading (batch) dims
// broadcast. Transposed views are read in place, without a copy.
func MatMul(a, b *Tensor) (*Tensor, error) {
	out, err := matmulRaw("matmul", a, b)
	if err != nil {
		return nil, err
	}
	ad, bd := a.Detach(), b.Detach()
	return record(out, "matmul", []*Tensor{a, b}, func(g *Tensor) ([]*Tensor, error) {
		var ga, gb *Tensor
		var err error
		if a.requiresGrad {
			if ga, err = matmulRaw("matmul", g, swapLast(bd)); err != nil {
				return nil, err
			}
			if ga, err = sumTo(ga, ad.shape); err != nil {
				return nil, err
			}
		}
		if b.requiresGrad && bd.Rank() == 2 && ad.Rank() > 2 {
			// Sum over the batch inside the product: (rows x K)ᵀ · (rows x N).
			af, err := reshapeRaw("matmul", ad, []int{-1, ad.shape[ad.Rank()-1]})
			if err != nil {
				return nil, err
			}
			gf, err := reshapeRaw("matmul", g, []int{-1, g.shape[g.Rank()-1]})
			if err != nil {
				return nil, err
			}
			gb, err = matmulRaw("matmul", swapLast(af), gf)
			return []*Tensor{ga, gb}, err
		}
		if b.requiresGrad {
			if gb, err = matmulRaw("matmul", swapLast(ad), g); err != nil {
				return nil, err
			}
			if gb, err = sumTo(gb, bd.shape); err != nil {
				return nil, err
			}
		}
		return []*Tensor{ga, gb}, nil
	}), nil
}

// Linear returns x·wᵀ + bias for x [..., In], w [Out, In] and bias [Out] (bias may be nil).
func Linear(x, w, bias *Tensor) (*Tensor, error) {
	if w == nil || w.Rank() != 2 {
		return nil, shapeErr("linear", "weight must be [out, in]", x, w)
	}
	wt, err := Transpose(w, 0, 1)
	if err != nil {
		return nil, err
	}
	y, err := MatMul(x, wt)
	if err != nil {
		return nil, err
	}
	if bias == nil {
		return y, nil
	}
	return Add(y, bias)
}
