package gpu

import (
	"fmt"
	"testing"
)

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

func TestTransformerBlock_LearnsToCopyItsInput(t *testing.T) {
	blk := newBlock(16, 2, 1)
	x := Must(Randn(9, 1, 2, 8, 16))
	opt := NewAdamW(blk.params(), 1e-2)
	var first, last float32
	for i := 0; i < 15; i++ {
		y := blk.forward(x)
		// Learn the identity on the residual stream's output: minimise mean((y - 2x)²).
		diff := y.Sub(x.Scale(2, 0))
		loss := diff.Mul(diff).Mean()
		opt.ZeroGrad()
		if err := Backward(loss); err != nil {
			t.Fatal(err)
		}
		if err := opt.Step(); err != nil {
			t.Fatal(err)
		}
		last, _ = loss.Item()
		if i == 0 {
			first = last
		}
	}
	if !(last < first*0.8) {
		t.Fatalf("loss went from %v to %v", first, last)
	}
}

// BenchmarkTransformerBlock times one forward and backward pass of a block with batch 4,
// sequence 128, width 256 and 4 heads.
func BenchmarkTransformerBlock(b *testing.B) {
	const bs, t, d = 4, 128, 256
	blk := newBlock(d, 4, 1)
	x := Must(Randn(9, 1, bs, t, d))
	for _, name := range []string{fmt.Sprintf("b%d_t%d_d%d", bs, t, d)} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				loss := blk.forward(x).Mean()
				if err := Backward(loss); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
