package gpu_test

import (
	"errors"
	"fmt"

	"github.com/lumenflow/lumen/gpu"
)

func ExampleMatMul() {
	a := gpu.Must(gpu.FromFloat32([]float32{1, 2, 3, 4, 5, 6}, 2, 3))
	b := gpu.Must(gpu.FromFloat32([]float32{1, 0, 0, 1, 1, 1}, 3, 2))
	c, err := gpu.MatMul(a, b)
	if err != nil {
		panic(err)
	}
	v, _ := c.Float32s()
	fmt.Println(c.Shape(), v)
	_, err = gpu.MatMul(a, a)
	fmt.Println(err, errors.Is(err, gpu.ErrShape))
	// Output:
	// [2 2] [4 5 10 11]
	// gpu: matmul [2 3], [2 3]: inner dims 3 and 2 differ true
}

func ExampleBackward() {
	x := gpu.Must(gpu.FromFloat32([]float32{1, 2, 3}, 3)).SetRequiresGrad(true)
	loss := x.Mul(x).Sum() // Σ x²
	if err := gpu.Backward(loss); err != nil {
		panic(err)
	}
	g, _ := x.Grad().Float32s()
	fmt.Println(g)
	// Output: [2 4 6]
}

func ExampleArena() {
	a := gpu.NewArena(64) // bytes
	x := gpu.Must(a.Zeros(8))
	y, err := gpu.Add(x, x) // 32 + 32 bytes fit
	fmt.Println(err, a.Used())
	_, err = gpu.Concat([]*gpu.Tensor{x, y}, 0) // would need 64 more
	fmt.Println(errors.Is(err, gpu.ErrBudget))
	a.Free()
	_, err = y.Float32s()
	fmt.Println(errors.Is(err, gpu.ErrFreed))
	// Output:
	// <nil> 64
	// true
	// true
}

func ExampleTry() {
	a := gpu.Must(gpu.Zeros(2, 3))
	err := gpu.Try(func() {
		_ = a.MatMul(a) // panics with an *OpError
	})
	fmt.Println(err)
	// Output: gpu: matmul [2 3], [2 3]: inner dims 3 and 2 differ
}
