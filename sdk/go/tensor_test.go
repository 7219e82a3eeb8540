package lumen

import (
	"errors"
	"testing"
)

// Natively there is no host: every tensor call reports ErrNotUnderLumen instead of failing oddly.
func TestTensor_NotUnderLumen(t *testing.T) {
	if _, err := NewTensor([]int{2}, []float32{1, 2}, true); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("NewTensor: %v", err)
	}
	if _, err := NewIndexTensor([]int{1}, []int64{3}); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("NewIndexTensor: %v", err)
	}
	x := &Tensor{h: 1}
	if _, err := MatMul(x, x); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("MatMul: %v", err)
	}
	if _, err := Op("relu", []*Tensor{x, nil}, nil); err == nil {
		t.Fatal("Op with a nil input succeeded")
	}
	if _, err := x.Float32s(); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("Float32s: %v", err)
	}
	if _, err := x.Shape(); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("Shape: %v", err)
	}
	for name, err := range map[string]error{"Backward": x.Backward(), "Free": x.Free()} {
		if !errors.Is(err, ErrNotUnderLumen) {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if _, err := NewAdamW([]*Tensor{x}, 1e-3, 0); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("NewAdamW: %v", err)
	}
	o := &Optimizer{h: 2}
	if err := o.Step(); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("Step: %v", err)
	}
	if err := o.ZeroGrad(); !errors.Is(err, ErrNotUnderLumen) {
		t.Fatalf("ZeroGrad: %v", err)
	}
}
