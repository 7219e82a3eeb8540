package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// Tensor is an n-dimensional array: a view (shape, strides in elements, offset) on a storage
// that other views may share. See the package doc for ownership and concurrency.
type Tensor struct {
	st      *storage
	shape   []int
	strides []int
	off     int

	requiresGrad bool
	grad         *Tensor
	node         *node
}

// storage is the memory behind one or more views.
type storage struct {
	dtype  DType
	f32    []float32
	i32    []int32
	i64    []int64
	nbytes int64
	arena  *Arena
	id     uint64
	freed  bool
	dev    *devMem // the CUDA copy, when the tensor lives there
}

// release drops the storage's memory; used by Arena.Free and Tensor.Free.
func (s *storage) release() {
	s.freed = true
	s.f32, s.i32, s.i64 = nil, nil, nil
	if s.dev != nil {
		s.dev.free()
		s.dev = nil
	}
}

// maxElems bounds one tensor so that byte counts never overflow.
const maxElems = 1 << 40

func numel(shape []int) (int, bool) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, false
		}
		if d != 0 && n > maxElems/d {
			return 0, false
		}
		n *= d
	}
	return n, true
}

func contiguousStrides(shape []int) []int {
	st := make([]int, len(shape))
	s := 1
	for i := len(shape) - 1; i >= 0; i-- {
		st[i] = s
		s *= shape[i]
	}
	return st
}

// alloc makes a zeroed contiguous tensor on device dev, counted in a.
func alloc(op string, a *Arena, dev Device, dt DType, shape []int) (*Tensor, error) {
	n, ok := numel(shape)
	if !ok {
		return nil, opErr(op, ErrArgument, "invalid shape %v", shape)
	}
	st := &storage{dtype: dt, nbytes: int64(n) * int64(dt.Size()), arena: a}
	if a != nil {
		id, err := a.reserve(op, st.nbytes)
		if err != nil {
			return nil, err
		}
		st.id = id
	}
	switch dt {
	case Float32:
		st.f32 = make([]float32, n)
	case Int32:
		st.i32 = make([]int32, n)
	case Int64:
		st.i64 = make([]int64, n)
	default:
		return nil, opErr(op, ErrDType, "cannot allocate %v tensors", dt)
	}
	if a != nil {
		a.track(st.id, st)
	}
	t := &Tensor{st: st, shape: append([]int(nil), shape...), strides: contiguousStrides(shape)}
	if dev == CUDA {
		st.dev = &devMem{hostValid: true}
	}
	return t, nil
}

// Zeros returns a float32 tensor of zeros counted in a (nil: not counted).
func (a *Arena) Zeros(shape ...int) (*Tensor, error) { return alloc("zeros", a, CPU, Float32, shape) }

// Full returns a float32 tensor filled with v.
func (a *Arena) Full(v float32, shape ...int) (*Tensor, error) {
	t, err := alloc("full", a, CPU, Float32, shape)
	if err != nil {
		return nil, err
	}
	for i := range t.st.f32 {
		t.st.f32[i] = v
	}
	return t, nil
}

// FromFloat32 copies data into a new float32 tensor of the given shape.
func (a *Arena) FromFloat32(data []float32, shape ...int) (*Tensor, error) {
	if n, ok := numel(shape); !ok || n != len(data) {
		return nil, opErr("from_float32", ErrShape, "%d values do not fill shape %v", len(data), shape)
	}
	t, err := alloc("from_float32", a, CPU, Float32, shape)
	if err != nil {
		return nil, err
	}
	copy(t.st.f32, data)
	return t, nil
}

// FromInt32 copies data into a new int32 tensor of the given shape.
func (a *Arena) FromInt32(data []int32, shape ...int) (*Tensor, error) {
	if n, ok := numel(shape); !ok || n != len(data) {
		return nil, opErr("from_int32", ErrShape, "%d values do not fill shape %v", len(data), shape)
	}
	t, err := alloc("from_int32", a, CPU, Int32, shape)
	if err != nil {
		return nil, err
	}
	copy(t.st.i32, data)
	return t, nil
}

// FromInt64 copies data into a new int64 tensor of the given shape.
func (a *Arena) FromInt64(data []int64, shape ...int) (*Tensor, error) {
	if n, ok := numel(shape); !ok || n != len(data) {
		return nil, opErr("from_int64", ErrShape, "%d values do not fill shape %v", len(data), shape)
	}
	t, err := alloc("from_int64", a, CPU, Int64, shape)
	if err != nil {
		return nil, err
	}
	copy(t.st.i64, data)
	return t, nil
}

// Randn returns standard-normal float32 values scaled by std, from a PCG generator seeded with
// seed: the same seed gives the same tensor everywhere.
func (a *Arena) Randn(seed uint64, std float32, shape ...int) (*Tensor, error) {
	t, err := alloc("randn", a, CPU, Float32, shape)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	for i := range t.st.f32 {
		t.st.f32[i] = float32(r.NormFloat64()) * std
	}
	return t, nil
}

// Uniform returns float32 values uniform in [lo, hi) from a generator seeded with seed.
func (a *Arena) Uniform(seed uint64, lo, hi float32, shape ...int) (*Tensor, error) {
	t, err := alloc("uniform", a, CPU, Float32, shape)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x632be59bd9b4e019))
	for i := range t.st.f32 {
		t.st.f32[i] = lo + (hi-lo)*r.Float32()
	}
	return t, nil
}

// Zeros returns an uncounted float32 tensor of zeros.
func Zeros(shape ...int) (*Tensor, error) { return (*Arena)(nil).Zeros(shape...) }

// Full returns an uncounted float32 tensor filled with v.
func Full(v float32, shape ...int) (*Tensor, error) { return (*Arena)(nil).Full(v, shape...) }

// FromFloat32 copies data into a new uncounted float32 tensor.
func FromFloat32(data []float32, shape ...int) (*Tensor, error) {
	return (*Arena)(nil).FromFloat32(data, shape...)
}

// FromInt32 copies data into a new uncounted int32 tensor.
func FromInt32(data []int32, shape ...int) (*Tensor, error) {
	return (*Arena)(nil).FromInt32(data, shape...)
}

// FromInt64 copies data into a new uncounted int64 tensor.
func FromInt64(data []int64, shape ...int) (*Tensor, error) {
	return (*Arena)(nil).FromInt64(data, shape...)
}

// Randn returns uncounted seeded normal values; see [Arena.Randn].
func Randn(seed uint64, std float32, shape ...int) (*Tensor, error) {
	return (*Arena)(nil).Randn(seed, std, shape...)
}

// Uniform returns uncounted seeded uniform values; see [Arena.Uniform].
func Uniform(seed uint64, lo, hi float32, shape ...int) (*Tensor, error) {
	return (*Arena)(nil).Uniform(seed, lo, hi, shape...)
}

// Scalar returns an uncounted rank-0 float32 tensor.
func Scalar(v float32) *Tensor { return must((*Arena)(nil).Full(v)) }

// Shape returns a copy of the tensor's shape.
func (t *Tensor) Shape() []int { return append([]int{}, t.shape...) }

// Strides returns a copy of the tensor's strides, in elements.
func (t *Tensor) Strides() []int { return append([]int{}, t.strides...) }

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Dim returns the size of dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Numel is the number of elements.
func (t *Tensor) Numel() int {
	n, _ := numel(t.shape)
	return n
}

// DType is the element type.
func (t *Tensor) DType() DType { return t.st.dtype }

// Arena is the arena the tensor's storage is counted in (nil: none).
func (t *Tensor) Arena() *Arena { return t.st.arena }

// Bytes is the size of the tensor's storage in bytes (shared with its views).
func (t *Tensor) Bytes() int64 { return t.st.nbytes }

// IsContiguous reports whether the view is row-major without gaps.
func (t *Tensor) IsContiguous() bool {
	s := 1
	for i := len(t.shape) - 1; i >= 0; i-- {
		if t.shape[i] != 1 && t.strides[i] != s {
			return false
		}
		s *= t.shape[i]
	}
	return true
}

// Free releases the tensor's storage (and so every view of it) now instead of waiting for the
// garbage collector or its arena; later use returns ErrFreed.
func (t *Tensor) Free() {
	s := t.st
	if s.freed {
		return
	}
	s.release()
	if s.arena != nil {
		s.arena.forget(s.id, s.nbytes)
	}
}

func (t *Tensor) check(op string, dt DType) error {
	if t == nil {
		return opErr(op, ErrArgument, "nil tensor")
	}
	if t.st.freed {
		return opErr(op, ErrFreed, "tensor %v was freed", t.shape)
	}
	if t.st.dtype != dt {
		return &OpError{Op: op, Shapes: [][]int{t.Shape()}, Err: ErrDType, Msg: fmt.Sprintf("want %v, have %v", dt, t.st.dtype)}
	}
	return nil
}

func (t *Tensor) checkIndex(op string) error {
	if t == nil {
		return opErr(op, ErrArgument, "nil tensor")
	}
	if t.st.freed {
		return opErr(op, ErrFreed, "tensor %v was freed", t.shape)
	}
	if t.st.dtype != Int32 && t.st.dtype != Int64 {
		return &OpError{Op: op, Shapes: [][]int{t.Shape()}, Err: ErrDType, Msg: fmt.Sprintf("indices must be I32 or I64, have %v", t.st.dtype)}
	}
	return nil
}

// view makes a tensor header on t's storage, with no autograd history.
func (t *Tensor) view(shape, strides []int, off int) *Tensor {
	return &Tensor{st: t.st, shape: shape, strides: strides, off: off}
}

// data returns t's float32 elements in row-major order: a slice of the storage when t is
// contiguous (the caller must not write to it), a counted copy otherwise.
func (t *Tensor) data(op string) ([]float32, error) {
	if err := t.check(op, Float32); err != nil {
		return nil, err
	}
	if err := t.syncHost(); err != nil {
		return nil, err
	}
	n := t.Numel()
	if t.IsContiguous() {
		return t.st.f32[t.off : t.off+n], nil
	}
	c, err := alloc(op, t.st.arena, CPU, Float32, t.shape)
	if err != nil {
		return nil, err
	}
	gather(c.st.f32, t.st.f32, t.shape, t.strides, t.off)
	return c.st.f32, nil
}

// indices returns t's integer elements as int64 in row-major order.
func (t *Tensor) indices(op string) ([]int64, error) {
	if err := t.checkIndex(op); err != nil {
		return nil, err
	}
	out := make([]int64, t.Numel())
	if t.st.dtype == Int64 {
		gather(out, t.st.i64, t.shape, t.strides, t.off)
		return out, nil
	}
	tmp := make([]int32, len(out))
	gather(tmp, t.st.i32, t.shape, t.strides, t.off)
	for i, v := range tmp {
		out[i] = int64(v)
	}
	return out, nil
}

// gather copies the strided view (shape, strides, off) of src into dst in row-major order.
func gather[T any](dst, src []T, shape, strides []int, off int) {
	if len(shape) == 0 {
		dst[0] = src[off]
		return
	}
	var rec func(d, o, di int) int
	last := len(shape) - 1
	rec = func(d, o, di int) int {
		if d == last {
			s := strides[d]
			if s == 1 {
				di += copy(dst[di:di+shape[d]], src[o:o+shape[d]])
				return di
			}
			for i := 0; i < shape[d]; i++ {
				dst[di] = src[o]
				di++
				o += s
			}
			return di
		}
		for i := 0; i < shape[d]; i++ {
			di = rec(d+1, o, di)
			o += strides[d]
		}
		return di
	}
	rec(0, off, 0)
}

// scatter copies row-major src into the strided view (shape, strides, off) of dst.
func scatter[T any](dst, src []T, shape, strides []int, off int) {
	if len(shape) == 0 {
		dst[off] = src[0]
		return
	}
	var rec func(d, o, si int) int
	last := len(shape) - 1
	rec = func(d, o, si int) int {
		if d == last {
			s := strides[d]
			for i := 0; i < shape[d]; i++ {
				dst[o] = src[si]
				si++
				o += s
			}
			return si
		}
		for i := 0; i < shape[d]; i++ {
			si = rec(d+1, o, si)
			o += strides[d]
		}
		return si
	}
	rec(0, off, 0)
}

// Float32s returns a copy of the tensor's values in row-major order.
func (t *Tensor) Float32s() ([]float32, error) {
	d, err := t.data("float32s")
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), d...), nil
}

// Int64s returns a copy of an integer tensor's values in row-major order.
func (t *Tensor) Int64s() ([]int64, error) { return t.indices("int64s") }

// Item returns the single value of a one-element float32 tensor.
func (t *Tensor) Item() (float32, error) {
	if t != nil && t.Numel() != 1 {
		return 0, shapeErr("item", "tensor has more than one element", t)
	}
	d, err := t.data("item")
	if err != nil {
		return 0, err
	}
	return d[0], nil
}

// String summarises the tensor: dtype, shape, device and its first values.
func (t *Tensor) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Tensor(%v %v %v", t.st.dtype, t.shape, t.Device())
	if t.st.freed {
		b.WriteString(" freed)")
		return b.String()
	}
	if t.st.dtype == Float32 {
		if d, err := t.data("string"); err == nil {
			b.WriteString(" [")
			for i, v := range d {
				if i == 8 {
					b.WriteString(" …")
					break
				}
				if i > 0 {
					b.WriteByte(' ')
				}
				fmt.Fprintf(&b, "%.4g", v)
			}
			b.WriteByte(']')
		}
	}
	b.WriteByte(')')
	return b.String()
}

func isFinite(v float32) bool { return !math.IsInf(float64(v), 0) && !math.IsNaN(float64(v)) }
