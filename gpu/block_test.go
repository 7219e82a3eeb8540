package gpu

import (
	"fmt"
	"testing"
)

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
