package gpu

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// backends lists the devices the suite runs on: the CPU always, CUDA when a device answers.
func backends(t *testing.T) []Device {
	devs := []Device{CPU}
	if info := BackendInfo(); info.CUDA {
		devs = append(devs, CUDA)
	} else {
		t.Logf("CUDA backend not tested: %s", info.CUDAReason)
	}
	return devs
}

func randT(seed uint64, lo, hi float32, shape ...int) *Tensor {
	return Must(Uniform(seed, lo, hi, shape...))
}

type opCase struct {
	name string
	in   []*Tensor // float inputs; the gradient is checked for each
	fn   func(in []*Tensor) (*Tensor, error)
	eps  float32 // finite-difference step (default 1e-2)
	tol  float64 // absolute tolerance (default 5e-3)
}

func idx32(v ...int32) *Tensor { return Must(FromInt32(v, len(v))) }

func opCases() []opCase {
	u := func(seed uint64, shape ...int) *Tensor { return randT(seed, -1, 1, shape...) }
	pos := func(seed uint64, shape ...int) *Tensor { return randT(seed, 0.5, 1.5, shape...) }
	away := func(seed uint64, shape ...int) *Tensor { // values at least 0.1 away from 0
		t := randT(seed, 0.1, 1, shape...)
		for i := range t.st.f32 {
			if i%2 == 1 {
				t.st.f32[i] = -t.st.f32[i]
			}
		}
		return t
	}
	distinct := func(seed uint64, shape ...int) *Tensor { // a permutation of spaced values
		t := u(seed, shape...)
		r := rand.New(rand.NewPCG(seed, 7))
		for i, j := range r.Perm(len(t.st.f32)) {
			t.st.f32[i] = float32(j)*0.1 - 1
		}
		return t
	}
	f1 := func(f func(*Tensor) (*Tensor, error)) func([]*Tensor) (*Tensor, error) {
		return func(in []*Tensor) (*Tensor, error) { return f(in[0]) }
	}
	f2 := func(f func(a, b *Tensor) (*Tensor, error)) func([]*Tensor) (*Tensor, error) {
		return func(in []*Tensor) (*Tensor, error) { return f(in[0], in[1]) }
	}
	return []opCase{
		{name: "add_broadcast", in: []*Tensor{u(1, 2, 3, 4), u(2, 3, 1)}, fn: f2(Add)},
		{name: "sub_broadcast", in: []*Tensor{u(3, 4), u(4, 2, 3, 4)}, fn: f2(Sub)},
		{name: "mul_broadcast", in: []*Tensor{u(5, 2, 1, 4), u(6, 3, 1)}, fn: f2(Mul)},
		{name: "div", in: []*Tensor{u(7, 3, 4), pos(8, 3, 4)}, fn: f2(Div)},
		{name: "exp", in: []*Tensor{u(9, 3, 5)}, fn: f1(Exp)},
		{name: "log", in: []*Tensor{pos(10, 3, 5)}, fn: f1(Log)},
		{name: "tanh", in: []*Tensor{u(11, 3, 5)}, fn: f1(Tanh)},
		{name: "sigmoid", in: []*Tensor{u(12, 3, 5)}, fn: f1(Sigmoid)},
		{name: "relu", in: []*Tensor{away(13, 3, 5)}, fn: f1(ReLU)},
		{name: "gelu", in: []*Tensor{u(14, 3, 5)}, fn: f1(GELU)},
		{name: "silu", in: []*Tensor{u(15, 3, 5)}, fn: f1(SiLU)},
		{name: "sqrt", in: []*Tensor{pos(16, 3, 5)}, fn: f1(Sqrt)},
		{name: "scale", in: []*Tensor{u(17, 4)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Scale(x, -2.5, 1) })},
		{name: "sum_axes_keepdim", in: []*Tensor{u(18, 2, 3, 4)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Sum(x, []int{0, 2}, true) })},
		{name: "sum_all", in: []*Tensor{u(19, 2, 3)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Sum(x, nil, false) })},
		{name: "mean_axis", in: []*Tensor{u(20, 2, 3, 4)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Mean(x, []int{-1}, false) })},
		{name: "max_axis", in: []*Tensor{distinct(21, 3, 4, 2)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Max(x, []int{1}, true) })},
		{name: "softmax_last", in: []*Tensor{u(22, 3, 6)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Softmax(x, -1) })},
		{name: "softmax_axis0", in: []*Tensor{u(23, 4, 3)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Softmax(x, 0) })},
		{name: "log_softmax", in: []*Tensor{u(24, 3, 6)}, fn: f1(func(x *Tensor) (*Tensor, error) { return LogSoftmax(x, 1) })},
		{name: "matmul_batched_broadcast", in: []*Tensor{u(25, 2, 3, 4), u(26, 4, 5)}, fn: f2(MatMul)},
		{name: "matmul_batch_bcast_left", in: []*Tensor{u(27, 3, 4), u(28, 2, 4, 5)}, fn: f2(MatMul)},
		{name: "matmul_transposed_view", in: []*Tensor{u(29, 4, 3), u(30, 5, 4)}, fn: func(in []*Tensor) (*Tensor, error) {
			a, _ := Transpose(in[0], 0, 1)
			b, _ := Transpose(in[1], 0, 1)
			return MatMul(a, b)
		}},
		{name: "linear", in: []*Tensor{u(31, 2, 3, 4), u(32, 5, 4), u(33, 5)}, fn: func(in []*Tensor) (*Tensor, error) { return Linear(in[0], in[1], in[2]) }},
		{name: "layer_norm", in: []*Tensor{u(34, 3, 6), u(35, 6), u(36, 6)}, fn: func(in []*Tensor) (*Tensor, error) { return LayerNorm(in[0], in[1], in[2], 1e-5) }},
		{name: "rms_norm", in: []*Tensor{u(37, 3, 6), u(38, 6)}, fn: func(in []*Tensor) (*Tensor, error) { return RMSNorm(in[0], in[1], 1e-5) }},
		{name: "embedding", in: []*Tensor{u(39, 5, 3)}, fn: func(in []*Tensor) (*Tensor, error) {
			return Embedding(in[0], Must(FromInt64([]int64{4, 0, 2, 4, 1, 0}, 2, 3)))
		}},
		{name: "rope", in: []*Tensor{u(40, 2, 3, 5, 8)}, fn: f1(func(x *Tensor) (*Tensor, error) { return RoPE(x, 3, 10000) })},
		{name: "attention_causal", in: []*Tensor{u(41, 2, 5, 4), u(42, 2, 5, 4), u(43, 2, 5, 3)}, fn: func(in []*Tensor) (*Tensor, error) { return Attention(in[0], in[1], in[2], true) }},
		{name: "attention_cross", in: []*Tensor{u(44, 1, 3, 4), u(45, 1, 6, 4), u(46, 1, 6, 2)}, fn: func(in []*Tensor) (*Tensor, error) { return Attention(in[0], in[1], in[2], false) }},
		{name: "flash_attention_causal", in: []*Tensor{u(47, 2, 7, 4), u(48, 2, 7, 4), u(49, 2, 7, 3)}, fn: func(in []*Tensor) (*Tensor, error) { return FlashAttention(in[0], in[1], in[2], true, 3) }},
		{name: "flash_attention_cross", in: []*Tensor{u(50, 1, 4, 4), u(51, 1, 9, 4), u(52, 1, 9, 2)}, fn: func(in []*Tensor) (*Tensor, error) { return FlashAttention(in[0], in[1], in[2], false, 4) }},
		{name: "conv2d_stride_pad", in: []*Tensor{u(53, 2, 2, 5, 5), u(54, 3, 2, 3, 3), u(55, 3)}, fn: func(in []*Tensor) (*Tensor, error) {
			return Conv2d(in[0], in[1], in[2], Conv2dParams{Stride: 2, Padding: 1})
		}},
		{name: "conv2d_plain", in: []*Tensor{u(56, 1, 3, 4, 4), u(57, 2, 3, 2, 2)}, fn: func(in []*Tensor) (*Tensor, error) {
			return Conv2d(in[0], in[1], nil, Conv2dParams{})
		}},
		{name: "max_pool2d", in: []*Tensor{distinct(58, 1, 2, 4, 4)}, fn: f1(func(x *Tensor) (*Tensor, error) { return MaxPool2d(x, 2, 2) })},
		{name: "transpose_contiguous", in: []*Tensor{u(59, 2, 3, 4)}, fn: f1(func(x *Tensor) (*Tensor, error) {
			y, err := Transpose(x, 0, 2)
			if err != nil {
				return nil, err
			}
			return Contiguous(y)
		})},
		{name: "permute_reshape", in: []*Tensor{u(60, 2, 3, 4)}, fn: f1(func(x *Tensor) (*Tensor, error) {
			y, err := Permute(x, 1, 2, 0)
			if err != nil {
				return nil, err
			}
			return Reshape(y, -1, 2)
		})},
		{name: "concat", in: []*Tensor{u(61, 2, 3), u(62, 2, 1), u(63, 2, 2)}, fn: func(in []*Tensor) (*Tensor, error) { return Concat(in, 1) }},
		{name: "slice", in: []*Tensor{u(64, 4, 5)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Slice(x, 1, 1, 4) })},
		{name: "broadcast_to", in: []*Tensor{u(65, 3, 1)}, fn: f1(func(x *Tensor) (*Tensor, error) { return BroadcastTo(x, 2, 3, 4) })},
		{name: "cross_entropy", in: []*Tensor{u(66, 2, 3, 5)}, fn: f1(func(x *Tensor) (*Tensor, error) {
			return CrossEntropy(x, Must(FromInt32([]int32{1, 4, -1, 0, 2, 3}, 2, 3)))
		})},
		{name: "dropout", in: []*Tensor{u(67, 4, 6)}, fn: f1(func(x *Tensor) (*Tensor, error) { return Dropout(x, 0.3, 99) })},
	}
}

// weightedSum is Σ out·w in float64, the scalar the gradient checker differentiates.
func weightedSum(t *testing.T, out *Tensor, w []float32) float64 {
	t.Helper()
	d, err := out.Float32s()
	if err != nil {
		t.Fatal(err)
	}
	var s float64
	for i, v := range d {
		s += float64(v) * float64(w[i])
	}
	return s
}

// TestOps_GradientsMatchFiniteDifferences checks every op's backward against central
// differences of Σ out·w for random w, on the CPU.
func TestOps_GradientsMatchFiniteDifferences(t *testing.T) {
	for _, c := range opCases() {
		t.Run(c.name, func(t *testing.T) {
			eps, tol := c.eps, c.tol
			if eps == 0 {
				eps = 1e-2
			}
			if tol == 0 {
				tol = 5e-3
			}
			for _, x := range c.in {
				x.SetRequiresGrad(true)
			}
			out, err := c.fn(c.in)
			if err != nil {
				t.Fatal(err)
			}
			w := randT(1234, -1, 1, out.shape...)
			loss := Must(Sum(Must(Mul(out, w)), nil, false))
			if err := Backward(loss); err != nil {
				t.Fatal(err)
			}
			wd := w.st.f32
			for i, x := range c.in {
				if x.Grad() == nil {
					t.Fatalf("input %d: no gradient", i)
				}
				ana, _ := x.Grad().Float32s()
				// Check up to 40 elements spread over the input.
				n := len(x.st.f32)
				step := max(1, n/40)
				for e := 0; e < n; e += step {
					orig := x.st.f32[e]
					x.st.f32[e] = orig + eps
					fp := weightedSum(t, Must(c.fn(detachAll(c.in))), wd)
					x.st.f32[e] = orig - eps
					fm := weightedSum(t, Must(c.fn(detachAll(c.in))), wd)
					x.st.f32[e] = orig
					num := (fp - fm) / (2 * float64(eps))
					if diff := math.Abs(num - float64(ana[e])); diff > tol+1e-2*math.Abs(num) {
						t.Errorf("input %d elem %d: analytic %.6f numeric %.6f", i, e, ana[e], num)
					}
				}
			}
		})
	}
}

func detachAll(in []*Tensor) []*Tensor {
	out := make([]*Tensor, len(in))
	for i, x := range in {
		out[i] = x.Detach()
	}
	return out
}

// TestOps_SameOnEveryBackend runs each op forward and backward on every available backend and
// compares values and gradients with the CPU's.
func TestOps_SameOnEveryBackend(t *testing.T) {
	if info := BackendInfo(); !info.CUDA {
		t.Skipf("only the CPU backend is available (CUDA: %s); the CPU is checked against finite differences and naive references", info.CUDAReason)
	}
	for _, dev := range backends(t) {
		if dev == CPU {
			continue
		}
		for _, c := range opCases() {
			t.Run(fmt.Sprintf("%v/%s", dev, c.name), func(t *testing.T) {
				want, wantGrads := runCase(t, c, CPU)
				got, gotGrads := runCase(t, c, dev)
				assertClose(t, "output", got, want, 1e-3)
				for i := range wantGrads {
					assertClose(t, fmt.Sprintf("grad %d", i), gotGrads[i], wantGrads[i], 1e-3)
				}
			})
		}
	}
}

func runCase(t *testing.T, c opCase, dev Device) ([]float32, [][]float32) {
	t.Helper()
	in := make([]*Tensor, len(c.in))
	for i, x := range c.in {
		y, err := To(Must(contiguousCopy("test", x)), dev)
		if err != nil {
			t.Fatal(err)
		}
		in[i] = y.Detach().SetRequiresGrad(true)
	}
	out, err := c.fn(in)
	if err != nil {
		t.Fatal(err)
	}
	if out.Device() != dev {
		t.Errorf("output on %v, want %v", out.Device(), dev)
	}
	w, err := To(randT(1234, -1, 1, out.shape...), dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := Backward(Must(Sum(Must(Mul(out, w)), nil, false))); err != nil {
		t.Fatal(err)
	}
	vals, _ := out.Float32s()
	var grads [][]float32
	for _, x := range in {
		g, _ := x.Grad().Float32s()
		grads = append(grads, g)
	}
	return vals, grads
}

func assertClose(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if d := math.Abs(float64(got[i]) - float64(want[i])); d > tol*(1+math.Abs(float64(want[i]))) || math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			t.Fatalf("%s[%d] = %v, want %v", what, i, got[i], want[i])
		}
	}
}

func TestFlashAttention_MatchesAttentionOnLongSequences(t *testing.T) {
	for _, causal := range []bool{false, true} {
		for _, shape := range [][4]int{{2, 70, 70, 8}, {1, 33, 100, 16}} {
			b, tq, tk, d := shape[0], shape[1], shape[2], shape[3]
			q := randT(1, -1, 1, b, tq, d).SetRequiresGrad(true)
			k := randT(2, -1, 1, b, tk, d).SetRequiresGrad(true)
			v := randT(3, -1, 1, b, tk, d).SetRequiresGrad(true)
			q2, k2, v2 := q.Detach().SetRequiresGrad(true), k.Detach().SetRequiresGrad(true), v.Detach().SetRequiresGrad(true)
			want := Must(Attention(q, k, v, causal))
			got := Must(FlashAttention(q2, k2, v2, causal, 16))
			wv, _ := want.Float32s()
			gv, _ := got.Float32s()
			assertClose(t, "out", gv, wv, 1e-4)
			w := randT(4, -1, 1, want.shape...)
			if err := Backward(Must(Sum(Must(Mul(want, w)), nil, false))); err != nil {
				t.Fatal(err)
			}
			if err := Backward(Must(Sum(Must(Mul(got, w)), nil, false))); err != nil {
				t.Fatal(err)
			}
			for i, pair := range [][2]*Tensor{{q, q2}, {k, k2}, {v, v2}} {
				a, _ := pair[0].Grad().Float32s()
				f, _ := pair[1].Grad().Float32s()
				assertClose(t, fmt.Sprintf("causal=%v grad %d", causal, i), f, a, 1e-3)
			}
		}
	}
}

func TestMatMul_MatchesNaiveOnOddShapes(t *testing.T) {
	for _, s := range [][3]int{{1, 1, 1}, {17, 33, 5}, {7, 1, 13}, {65, 31, 130}, {6, 16, 8}, {100, 3, 1}} {
		m, n, k := s[0], s[1], s[2]
		a, b := randT(1, -1, 1, 3, m, k), randT(2, -1, 1, k, n)
		c := Must(MatMul(a, b))
		cd, _ := c.Float32s()
		for bi := 0; bi < 3; bi++ {
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					var want float64
					for p := 0; p < k; p++ {
						want += float64(a.st.f32[(bi*m+i)*k+p]) * float64(b.st.f32[p*n+j])
					}
					if got := cd[(bi*m+i)*n+j]; math.Abs(float64(got)-want) > 1e-4*float64(k) {
						t.Fatalf("%v: c[%d,%d,%d] = %v, want %v", s, bi, i, j, got, want)
					}
				}
			}
		}
	}
}

func TestOps_ShapeErrorsNameTheOpAndShapes(t *testing.T) {
	a, b := randT(1, 0, 1, 2, 3), randT(2, 0, 1, 4, 5)
	cases := []struct {
		name string
		run  func() error
		want error
	}{
		{"matmul", func() error { _, err := MatMul(a, b); return err }, ErrShape},
		{"add", func() error { _, err := Add(a, b); return err }, ErrShape},
		{"reshape", func() error { _, err := Reshape(a, 4, -1); return err }, ErrShape},
		{"sum", func() error { _, err := Sum(a, []int{5}, false); return err }, ErrArgument},
		{"embedding", func() error { _, err := Embedding(a, idx32(0, 2)); return err }, ErrArgument},
		{"cross_entropy", func() error { _, err := CrossEntropy(a, idx32(0, 3)); return err }, ErrArgument},
		{"cross_entropy", func() error { _, err := CrossEntropy(a, a); return err }, ErrDType},
		{"slice", func() error { _, err := Slice(a, 1, 2, 9); return err }, ErrShape},
		{"conv2d", func() error { _, err := Conv2d(a, b, nil, Conv2dParams{}); return err }, ErrShape},
		{"dropout", func() error { _, err := Dropout(a, 1, 0); return err }, ErrArgument},
		{"zeros", func() error { _, err := Zeros(-1, 2); return err }, ErrArgument},
		{"zeros", func() error { _, err := Zeros(1<<30, 1<<30, 1<<30); return err }, ErrArgument},
	}
	for _, c := range cases {
		err := c.run()
		if !errors.Is(err, c.want) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			continue
		}
		var oe *OpError
		if !errors.As(err, &oe) || oe.Op != c.name {
			t.Errorf("%s: error %v does not name the op", c.name, err)
		}
	}
	if err := Try(func() { a.MatMul(b) }); !errors.Is(err, ErrShape) {
		t.Errorf("Try(method) = %v, want ErrShape", err)
	}
	var oe *OpError
	_, err := MatMul(a, b)
	if errors.As(err, &oe); len(oe.Shapes) != 2 || err.Error() != "gpu: matmul [2 3], [4 5]: inner dims 3 and 4 differ" {
		t.Errorf("message %q", err)
	}
}

func TestTry_LetsOtherPanicsThrough(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("a non-op panic was swallowed")
		}
	}()
	_ = Try(func() { panic("boom") })
}

func TestViews_ShareStorageAndCopyOnlyWhenNeeded(t *testing.T) {
	x := Must(FromFloat32([]float32{0, 1, 2, 3, 4, 5}, 2, 3))
	xt := Must(Transpose(x, 0, 1))
	if xt.IsContiguous() || xt.st != x.st {
		t.Fatal("transpose should be a strided view")
	}
	got, _ := xt.Float32s()
	assertClose(t, "transpose", got, []float32{0, 3, 1, 4, 2, 5}, 0)
	s := Must(Slice(x, 1, 1, 3))
	got, _ = s.Float32s()
	assertClose(t, "slice", got, []float32{1, 2, 4, 5}, 0)
	r := Must(Reshape(x, 3, 2))
	if r.st != x.st {
		t.Fatal("reshape of a contiguous tensor should be a view")
	}
	c := Must(Contiguous(xt))
	if c.st == x.st || !c.IsContiguous() {
		t.Fatal("contiguous of a transposed view should copy")
	}
	if Must(Contiguous(x)) != x {
		t.Fatal("contiguous of a contiguous tensor should return it")
	}
}

func TestDropout_IsSeededAndScales(t *testing.T) {
	x := Must(Full(1, 1000))
	a, _ := Must(Dropout(x, 0.25, 7)).Float32s()
	b, _ := Must(Dropout(x, 0.25, 7)).Float32s()
	c, _ := Must(Dropout(x, 0.25, 8)).Float32s()
	assertClose(t, "same seed", a, b, 0)
	kept, differ := 0, 0
	for i := range a {
		if a[i] != 0 {
			kept++
			if a[i] != 1/0.75 {
				t.Fatalf("kept value %v", a[i])
			}
		}
		if a[i] != c[i] {
			differ++
		}
	}
	if kept < 700 || kept > 800 || differ == 0 {
		t.Fatalf("kept %d of 1000, %d differ across seeds", kept, differ)
	}
}

func TestBackward_AccumulatesAcrossUses(t *testing.T) {
	x := Must(FromFloat32([]float32{1, 2, 3}, 3)).SetRequiresGrad(true)
	y := Must(Mul(x, x))             // x²
	z := Must(Add(y, x))             // x² + x
	loss := Must(Sum(z, nil, false)) // Σ
	if err := Backward(loss); err != nil {
		t.Fatal(err)
	}
	g, _ := x.Grad().Float32s()
	assertClose(t, "grad", g, []float32{3, 5, 7}, 1e-6)
	if err := Backward(loss); err != nil {
		t.Fatal(err)
	}
	g, _ = x.Grad().Float32s()
	assertClose(t, "grad twice", g, []float32{6, 10, 14}, 1e-6)
	if err := Backward(Must(Full(1, 2))); !errors.Is(err, ErrShape) {
		t.Fatalf("backward of a non-scalar: %v", err)
	}
}

func TestBackendInfo_SaysWhyCUDAIsMissing(t *testing.T) {
	info := BackendInfo()
	if info.CPUKernel == "" || info.Threads < 1 {
		t.Fatalf("info %+v", info)
	}
	if info.CUDA {
		t.Logf("CUDA on %s via %s", info.CUDADevice, info.CUDALibraries)
		return
	}
	if info.CUDAReason == "" {
		t.Fatal("CUDA unavailable without a reason")
	}
	x := randT(1, 0, 1, 2)
	if _, err := To(x, CUDA); !errors.Is(err, ErrDevice) {
		t.Fatalf("To(CUDA) without a device: %v", err)
	}
}
