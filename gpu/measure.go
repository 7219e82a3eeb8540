package gpu

import (
	"fmt"
	"time"

	"github.com/lumenflow/lumen/gpu/internal/openblas"
)

// Measurements for `lumen bench`: each runs its work for at least d (and at least once) on this
// machine now and reports a rate. They are not for use while other work runs.

// MatmulGFLOPS measures square float32 matmul of side n with Lumen's CPU kernel on threads cores.
func MatmulGFLOPS(n, threads int, d time.Duration) (float64, error) {
	x, y, err := squarePair(n)
	if err != nil {
		return 0, err
	}
	defer SetThreads(SetThreads(threads))
	return rate(2*float64(n)*float64(n)*float64(n)/1e9, d, func() error {
		_, err := matmulRaw("matmul", x, y)
		return err
	})
}

// OpenBLASGFLOPS measures the same matmul with OpenBLAS (Debian's libopenblas0-pthread), loaded
// at run time; the error says why it cannot when it is not installed.
func OpenBLASGFLOPS(n, threads int, d time.Duration) (float64, error) {
	if err := openblas.Load(); err != nil {
		return 0, fmt.Errorf("OpenBLAS not available: %w", err)
	}
	x, y, err := squarePair(n)
	if err != nil {
		return 0, err
	}
	openblas.SetThreads(threads)
	c := make([]float32, n*n)
	return rate(2*float64(n)*float64(n)*float64(n)/1e9, d, func() error {
		openblas.Sgemm(n, n, n, x.st.f32, y.st.f32, c)
		return nil
	})
}

// TransformerBlockPerSecond measures forward and backward passes per second of a pre-norm
// transformer block (RMSNorm, causal flash attention with RoPE, SiLU MLP) of batch 4, sequence
// 128, width 256 and 4 heads, on every core.
func TransformerBlockPerSecond(d time.Duration) (float64, error) {
	blk := newBlock(256, 4, 1)
	x, err := Randn(9, 1, 4, 128, 256)
	if err != nil {
		return 0, err
	}
	return rate(1, d, func() error {
		var err error
		if terr := Try(func() { err = Backward(blk.forward(x).Mean()) }); terr != nil {
			return terr
		}
		return err
	})
}

// squarePair returns two random n×n float32 matrices.
func squarePair(n int) (x, y *Tensor, err error) {
	if x, err = Randn(1, 1, n, n); err != nil {
		return nil, nil, err
	}
	y, err = Randn(2, 1, n, n)
	return x, y, err
}

// rate runs fn for at least d, and at least once, and returns units per second.
func rate(units float64, d time.Duration, fn func() error) (float64, error) {
	start, n := time.Now(), 0
	for n == 0 || time.Since(start) < d {
		if err := fn(); err != nil {
			return 0, err
		}
		n++
	}
	return units * float64(n) / time.Since(start).Seconds(), nil
}

// block is a pre-norm transformer block: RMSNorm, causal multi-head attention with RoPE (the
// flash form), a residual, RMSNorm, a SiLU MLP and a residual.
type block struct {
	heads                    int
	n1, n2, wqkv, wo, w1, w2 *Tensor
}

func newBlock(d, heads int, seed uint64) *block {
	p := func(i uint64, shape ...int) *Tensor {
		return Must(Randn(seed+i, 0.1, shape...)).SetRequiresGrad(true)
	}
	return &block{heads: heads,
		n1: Must(Full(1, d)).SetRequiresGrad(true), n2: Must(Full(1, d)).SetRequiresGrad(true),
		wqkv: p(1, 3*d, d), wo: p(2, d, d), w1: p(3, 4*d, d), w2: p(4, d, 4*d)}
}

func (b *block) params() []*Tensor { return []*Tensor{b.n1, b.n2, b.wqkv, b.wo, b.w1, b.w2} }

func (b *block) forward(x *Tensor) *Tensor {
	bs, t, d := x.Dim(0), x.Dim(1), x.Dim(2)
	hd := d / b.heads
	h := Must(RMSNorm(x, b.n1, 1e-5))
	qkv := Must(Linear(h, b.wqkv, nil)).Reshape(bs, t, 3, b.heads, hd).Permute(2, 0, 3, 1, 4) // [3, B, H, T, hd]
	q := Must(RoPE(qkv.Slice(0, 0, 1).Reshape(bs, b.heads, t, hd), 0, 10000))
	k := Must(RoPE(qkv.Slice(0, 1, 2).Reshape(bs, b.heads, t, hd), 0, 10000))
	v := qkv.Slice(0, 2, 3).Reshape(bs, b.heads, t, hd)
	a := Must(FlashAttention(q, k, v, true, 64)).Permute(0, 2, 1, 3).Reshape(bs, t, d)
	x = x.Add(Must(Linear(a, b.wo, nil)))
	h = Must(RMSNorm(x, b.n2, 1e-5))
	return x.Add(Must(Linear(Must(Linear(h, b.w1, nil)).SiLU(), b.w2, nil)))
}
