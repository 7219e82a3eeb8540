package gpu

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

func TestArena_RefusesAllocationsPastItsLimit(t *testing.T) {
	a := NewArena(1000)
	x, err := a.Zeros(100) // 400 bytes
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Zeros(100)
	if err != nil {
		t.Fatal(err)
	}
	if a.Used() != 800 {
		t.Fatalf("used %d, want 800", a.Used())
	}
	// The op's output joins the arena and would take it past the limit.
	_, err = Add(x, y)
	if !errors.Is(err, ErrBudget) {
		t.Fatalf("add over budget: %v", err)
	}
	var oe *OpError
	if !errors.As(err, &oe) || oe.Op != "add" {
		t.Fatalf("budget error does not name the op: %v", err)
	}
	y.Free()
	if a.Used() != 400 {
		t.Fatalf("after Free of one tensor: used %d, want 400", a.Used())
	}
	if _, err := Add(x, x); err != nil {
		t.Fatal(err)
	}
	if _, err := Exp(y); !errors.Is(err, ErrFreed) {
		t.Fatalf("use after free: %v", err)
	}
	a.Free()
	if a.Used() != 0 {
		t.Fatalf("after arena Free: used %d", a.Used())
	}
	if _, err := x.Float32s(); !errors.Is(err, ErrFreed) {
		t.Fatalf("read after arena Free: %v", err)
	}
	if _, err := a.Zeros(1); !errors.Is(err, ErrFreed) {
		t.Fatalf("alloc in freed arena: %v", err)
	}
}

func TestArena_CountsOnlyLiveTensors(t *testing.T) {
	a := NewArena(1 << 20)   // 1 MiB
	x, _ := a.Zeros(1 << 16) // 256 KiB
	// Many temporaries, each dropped: the collector returns their bytes to the arena.
	for i := 0; i < 20; i++ {
		if _, err := Scale(x, 2, 0); err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
	}
	runtime.GC()
	if a.Peak() > 1<<20 {
		t.Fatalf("peak %d over the limit", a.Peak())
	}
	runtime.KeepAlive(x)
}

// TestTraining_MLPLearnsXOR trains a two-layer network with each optimiser and checks the loss
// falls to near zero.
func TestTraining_MLPLearnsXOR(t *testing.T) {
	xs := Must(FromFloat32([]float32{0, 0, 0, 1, 1, 0, 1, 1}, 4, 2))
	ys := Must(FromInt32([]int32{0, 1, 1, 0}, 4))
	for _, name := range []string{"sgd", "adamw"} {
		w1 := Must(Randn(1, 1, 8, 2)).SetRequiresGrad(true)
		b1 := Must(Zeros(8)).SetRequiresGrad(true)
		w2 := Must(Randn(2, 1, 2, 8)).SetRequiresGrad(true)
		b2 := Must(Zeros(2)).SetRequiresGrad(true)
		params := []*Tensor{w1, b1, w2, b2}
		var step func() error
		var zero func()
		if name == "sgd" {
			o := NewSGD(params, 0.2, 0.9)
			step, zero = o.Step, o.ZeroGrad
		} else {
			o := NewAdamW(params, 0.05)
			step, zero = o.Step, o.ZeroGrad
		}
		var loss float32
		for i := 0; i < 300; i++ {
			h := Must(Linear(xs, w1, b1)).Tanh()
			l := Must(CrossEntropy(Must(Linear(h, w2, b2)), ys))
			zero()
			if err := Backward(l); err != nil {
				t.Fatal(err)
			}
			if _, err := ClipGradNorm(params, 5); err != nil {
				t.Fatal(err)
			}
			if err := step(); err != nil {
				t.Fatal(err)
			}
			loss, _ = l.Item()
		}
		if loss > 0.05 {
			t.Errorf("%s: final loss %v", name, loss)
		}
	}
}

func TestAdamW_MatchesReferenceStep(t *testing.T) {
	w := Must(FromFloat32([]float32{1, -2}, 2)).SetRequiresGrad(true)
	w.grad = Must(FromFloat32([]float32{0.5, -1}, 2))
	o := NewAdamW([]*Tensor{w}, 0.1)
	o.WeightDecay = 0.1
	if err := o.Step(); err != nil {
		t.Fatal(err)
	}
	// First step: m̂ = g, v̂ = g², so the update is lr·(sign(g) + λ·w).
	got, _ := w.Float32s()
	want := []float32{1 - 0.1*(1+0.1*1), -2 - 0.1*(-1+0.1*-2)}
	assertClose(t, "adamw", got, want, 1e-6)
}

func TestSGD_MomentumMatchesReference(t *testing.T) {
	w := Must(FromFloat32([]float32{1}, 1)).SetRequiresGrad(true)
	o := NewSGD([]*Tensor{w}, 0.1, 0.5)
	for i := 0; i < 2; i++ {
		w.grad = Must(FromFloat32([]float32{1}, 1))
		if err := o.Step(); err != nil {
			t.Fatal(err)
		}
	}
	// v1 = 1, w = 0.9; v2 = 0.5+1 = 1.5, w = 0.75
	got, _ := w.Float32s()
	assertClose(t, "sgd", got, []float32{0.75}, 1e-6)
}

func TestClipGradNorm_ScalesToMaxNorm(t *testing.T) {
	a := Must(Zeros(2)).SetRequiresGrad(true)
	b := Must(Zeros(1)).SetRequiresGrad(true)
	a.grad = Must(FromFloat32([]float32{3, 0}, 2))
	b.grad = Must(FromFloat32([]float32{4}, 1))
	n, err := ClipGradNorm([]*Tensor{a, b}, 1)
	if err != nil || math.Abs(n-5) > 1e-6 {
		t.Fatalf("norm %v, %v", n, err)
	}
	ga, _ := a.grad.Float32s()
	gb, _ := b.grad.Float32s()
	assertClose(t, "clipped", append(ga, gb...), []float32{0.6, 0, 0.8}, 1e-5)
}

func TestSafetensors_RoundTrip(t *testing.T) {
	w := randT(1, -1, 1, 3, 4)
	wt := Must(Transpose(w, 0, 1)) // a strided view saves as its logical contents
	ids := Must(FromInt64([]int64{1, -2, 1 << 40}, 3))
	small := Must(FromInt32([]int32{7}, 1))
	path := filepath.Join(t.TempDir(), "m.safetensors")
	meta := map[string]string{"format": "pt"}
	if err := SaveSafetensors(path, map[string]*Tensor{"w": w, "wt": wt, "ids": ids, "small": small}, meta); err != nil {
		t.Fatal(err)
	}
	got, gm, err := LoadSafetensors(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if gm["format"] != "pt" || len(got) != 4 {
		t.Fatalf("meta %v, %d tensors", gm, len(got))
	}
	for name, want := range map[string]*Tensor{"w": w, "wt": wt} {
		a, _ := got[name].Float32s()
		b, _ := want.Float32s()
		assertClose(t, name, a, b, 0)
		if !sameShape(got[name].shape, want.shape) {
			t.Fatalf("%s shape %v", name, got[name].shape)
		}
	}
	gi, _ := got["ids"].Int64s()
	if got["ids"].DType() != Int64 || gi[2] != 1<<40 || gi[1] != -2 {
		t.Fatalf("ids %v %v", got["ids"].DType(), gi)
	}
	if got["small"].DType() != Int32 {
		t.Fatalf("small dtype %v", got["small"].DType())
	}
	// The bytes on disk start with the length of an 8-byte-aligned JSON header.
	raw, _ := os.ReadFile(path)
	if n := int(raw[0]) | int(raw[1])<<8; n%8 != 0 || raw[8] != '{' {
		t.Fatalf("header length %d, first byte %q", n, raw[8])
	}
}

// TestSafetensors_ReadsReferenceFile reads a file written by the Python safetensors library
// (testdata/reference.safetensors, see testdata/reference.py): F32, F16, BF16, I32 and I64
// tensors and metadata.
func TestSafetensors_ReadsReferenceFile(t *testing.T) {
	raw, err := os.ReadFile("testdata/reference.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	got, meta, err := ReadSafetensors(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if meta["source"] != "reference.py" {
		t.Fatalf("metadata %v", meta)
	}
	want := map[string][]float32{
		"f32":  {1, -2.5, 0.1, 65504},
		"f16":  {1, -2.5, 0.0999755859375, 65504},
		"bf16": {1, -2.5, 0.10009765625, 65536},
	}
	for name, w := range want {
		v, err := got[name].Float32s()
		if err != nil {
			t.Fatal(name, err)
		}
		assertClose(t, name, v, w, 0)
	}
	i32, _ := got["i32"].Int64s()
	i64, _ := got["i64"].Int64s()
	if i32[1] != -3 || i64[2] != 1<<40 || !sameShape(got["i64"].shape, []int{3, 1}) {
		t.Fatalf("i32 %v i64 %v", i32, i64)
	}
}

func TestSafetensors_RejectsHostileHeaders(t *testing.T) {
	le := func(n uint64) []byte {
		b := make([]byte, 8)
		for i := range b {
			b[i] = byte(n >> (8 * i))
		}
		return b
	}
	file := func(h string, data ...byte) []byte { return append(append(le(uint64(len(h))), h...), data...) }
	cases := map[string][]byte{
		"short":         {1, 2, 3},
		"huge length":   append(le(1<<62), '{', '}'),
		"not object":    file(`[1]`),
		"bad json":      file(`{"a":`),
		"offset past":   file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 1, 2, 3, 4),
		"size mismatch": file(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, 1, 2, 3, 4),
		"overflow":      file(`{"a":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,0]}}`),
		"negative dim":  file(`{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}`),
		"hole":          file(`{"a":{"dtype":"I32","shape":[1],"data_offsets":[4,8]}}`, 0, 0, 0, 0, 1, 0, 0, 0),
		"overlap":       file(`{"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, 1, 0, 0, 0),
		"dtype":         file(`{"a":{"dtype":"C64","shape":[],"data_offsets":[0,8]}}`, 0, 0, 0, 0, 0, 0, 0, 0),
		"unknown field": file(`{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}`, 0, 0, 0, 0),
	}
	for name, data := range cases {
		if _, _, err := ReadSafetensors(data, nil); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func FuzzSafetensors(f *testing.F) {
	raw, err := os.ReadFile("testdata/reference.safetensors")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	var b bytes.Buffer
	_ = WriteSafetensors(&b, map[string]*Tensor{"x": randT(1, 0, 1, 2, 2)}, map[string]string{"k": "v"})
	f.Add(b.Bytes())
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, '{', '}'})
	f.Fuzz(func(t *testing.T, data []byte) {
		a := NewArena(int64(len(data)) * 4) // at most 4 bytes out per byte in (F16/BF16 widen 2x)
		ts, _, err := ReadSafetensors(data, a)
		if err != nil {
			return
		}
		// What parses must write back and parse again to the same tensors.
		var out bytes.Buffer
		if err := WriteSafetensors(&out, ts, nil); err != nil {
			t.Fatal(err)
		}
		again, _, err := ReadSafetensors(out.Bytes(), nil)
		if err != nil || len(again) != len(ts) {
			t.Fatalf("re-read: %v (%d vs %d tensors)", err, len(again), len(ts))
		}
	})
}
