package gpu

import "fmt"

// contiguousCopy returns a new contiguous copy of t's elements (any dtype), no autograd.
func contiguousCopy(op string, t *Tensor) (*Tensor, error) {
	if t == nil {
		return nil, opErr(op, ErrArgument, "nil tensor")
	}
	if t.st.freed {
		return nil, opErr(op, ErrFreed, "tensor %v was freed", t.shape)
	}
	if err := t.syncHost(); err != nil {
		return nil, err
	}
	out, err := alloc(op, arenaOf(t), t.Device(), t.st.dtype, t.shape)
	if err != nil {
		return nil, err
	}
	if out.Numel() == 0 {
		return out, nil
	}
	switch t.st.dtype {
	case Float32:
		gather(out.st.f32, t.st.f32, t.shape, t.strides, t.off)
	case Int32:
		gather(out.st.i32, t.st.i32, t.shape, t.strides, t.off)
	case Int64:
		gather(out.st.i64, t.st.i64, t.shape, t.strides, t.off)
	}
	return out, nil
}

// Contiguous returns t when it is already row-major without gaps, a copy otherwise.
func Contiguous(t *Tensor) (*Tensor, error) {
	if t == nil {
		return nil, opErr("contiguous", ErrArgument, "nil tensor")
	}
	if t.IsContiguous() {
		return t, nil
	}
	out, err := contiguousCopy("contiguous", t)
	if err != nil {
		return nil, err
	}
	return record(out, "contiguous", []*Tensor{t}, func(g *Tensor) ([]*Tensor, error) {
		return []*Tensor{g}, nil
	}), nil
}

// resolveShape fills in a single -1 and checks the element count.
func resolveShape(op string, t *Tensor, shape []int) ([]int, error) {
	out := append([]int(nil), shape...)
	infer, known := -1, 1
	for i, d := range out {
		switch {
		case d == -1 && infer < 0:
			infer = i
		case d < 0:
			return nil, shapeErr(op, fmt.Sprintf("invalid target shape %v", shape), t)
		default:
			if d != 0 && known > maxElems/d {
				return nil, shapeErr(op, fmt.Sprintf("target shape %v too large", shape), t)
			}
			known *= d
		}
	}
	n := t.Numel()
	if infer >= 0 {
		if known == 0 || n%known != 0 {
			return nil, shapeErr(op, fmt.Sprintf("cannot infer -1 in %v", shape), t)
		}
		out[infer] = n / known
		known = n
	}
	if known != n {
		return nil, shapeErr(op, fmt.Sprintf("cannot reshape %d elements to %v", n, shape), t)
	}
	return out, nil
}

// reshapeRaw reshapes without autograd: a view when t is contiguous, a copy otherwise.
func reshapeRaw(op string, t *Tensor, shape []int) (*Tensor, error) {
	s, err := resolveShape(op, t, shape)
	if err != nil {
		return nil, err
	}
	if !t.IsContiguous() {
		if t, err = contiguousCopy(op, t); err != nil {
			return nil, err
		}
	}
	return t.view(s, contiguousStrides(s), t.off), nil
}

// Reshape returns t with a new shape (one dim may be -1): a view when t is contiguous.
func Reshape(t *Tensor, shape ...int) (*Tensor, error) {
	if t == nil {
		return nil, opErr("reshape", ErrArgument, "nil tensor")
	}
	out, err := reshapeRaw("reshape", t, shape)
	if err != nil {
		return nil, err
	}
	in := t.Shape()
	return record(out, "reshape", []*Tensor{t}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := reshapeRaw("reshape", g, in)
		return []*Tensor{gx}, err
	}), nil
}

// Permute reorders dims: output dim i is input dim perm[i]. It is a view.
func Permute(t *Tensor, perm ...int) (*Tensor, error) {
	if t == nil {
		return nil, opErr("permute", ErrArgument, "nil tensor")
	}
	if len(perm) != t.Rank() {
		return nil, shapeErr("permute", fmt.Sprintf("permutation %v has the wrong length", perm), t)
	}
	seen := make([]bool, len(perm))
	shape, strides := make([]int, len(perm)), make([]int, len(perm))
	inv := make([]int, len(perm))
	for i, p := range perm {
		if p < 0 {
			p += len(perm)
		}
		if p < 0 || p >= len(perm) || seen[p] {
			return nil, shapeErr("permute", fmt.Sprintf("invalid permutation %v", perm), t)
		}
		seen[p] = true
		shape[i], strides[i] = t.shape[p], t.strides[p]
		inv[p] = i
	}
	out := t.view(shape, strides, t.off)
	return record(out, "permute", []*Tensor{t}, func(g *Tensor) ([]*Tensor, error) {
		gs, gst := make([]int, len(inv)), make([]int, len(inv))
		for i, p := range inv {
			gs[i], gst[i] = g.shape[p], g.strides[p]
		}
		return []*Tensor{g.view(gs, gst, g.off)}, nil
	}), nil
}

// Transpose swaps dims d0 and d1 (negative counts from the end). It is a view.
func Transpose(t *Tensor, d0, d1 int) (*Tensor, error) {
	if t == nil {
		return nil, opErr("transpose", ErrArgument, "nil tensor")
	}
	r := t.Rank()
	if d0 < 0 {
		d0 += r
	}
	if d1 < 0 {
		d1 += r
	}
	if d0 < 0 || d0 >= r || d1 < 0 || d1 >= r {
		return nil, shapeErr("transpose", fmt.Sprintf("dims %d, %d out of range", d0, d1), t)
	}
	perm := make([]int, r)
	for i := range perm {
		perm[i] = i
	}
	perm[d0], perm[d1] = d1, d0
	return Permute(t, perm...)
}

// Slice takes elements [start, end) of axis as a view (step 1).
func Slice(t *Tensor, axis, start, end int) (*Tensor, error) {
	if t == nil {
		return nil, opErr("slice", ErrArgument, "nil tensor")
	}
	if axis < 0 {
		axis += t.Rank()
	}
	if axis < 0 || axis >= t.Rank() {
		return nil, shapeErr("slice", fmt.Sprintf("axis %d out of range", axis), t)
	}
	if start < 0 || end < start || end > t.shape[axis] {
		return nil, shapeErr("slice", fmt.Sprintf("range [%d, %d) outside axis %d", start, end, axis), t)
	}
	shape := t.Shape()
	shape[axis] = end - start
	out := t.view(shape, t.Strides(), t.off+start*t.strides[axis])
	in := t.Shape()
	return record(out, "slice", []*Tensor{t}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := alloc("slice", arenaOf(g), g.Device(), Float32, in)
		if err != nil {
			return nil, err
		}
		gd, err := g.data("slice")
		if err != nil {
			return nil, err
		}
		dst := gx.view(shape, gx.Strides(), start*gx.strides[axis])
		if len(gd) > 0 {
			scatter(gx.st.f32, gd, dst.shape, dst.strides, dst.off)
		}
		return []*Tensor{gx}, nil
	}), nil
}

// Concat joins tensors along axis; all other dims must match.
func Concat(ts []*Tensor, axis int) (*Tensor, error) {
	if len(ts) == 0 {
		return nil, opErr("concat", ErrArgument, "no tensors")
	}
	for _, t := range ts {
		if err := t.check("concat", Float32); err != nil {
			return nil, err
		}
	}
	dev, err := deviceOf("concat", ts...)
	if err != nil {
		return nil, err
	}
	r := ts[0].Rank()
	if axis < 0 {
		axis += r
	}
	if axis < 0 || axis >= r {
		return nil, shapeErr("concat", fmt.Sprintf("axis %d out of range", axis), ts...)
	}
	shape := ts[0].Shape()
	shape[axis] = 0
	for _, t := range ts {
		if t.Rank() != r {
			return nil, shapeErr("concat", "ranks differ", ts...)
		}
		for i := range shape {
			if i != axis && t.shape[i] != shape[i] {
				return nil, shapeErr("concat", fmt.Sprintf("dim %d differs", i), ts...)
			}
		}
		shape[axis] += t.shape[axis]
	}
	out, err := alloc("concat", arenaOf(ts...), dev, Float32, shape)
	if err != nil {
		return nil, err
	}
	at := 0
	sizes := make([]int, len(ts))
	for i, t := range ts {
		d, err := t.data("concat")
		if err != nil {
			return nil, err
		}
		sub := t.Shape()
		if len(d) > 0 {
			scatter(out.st.f32, d, sub, out.strides, at*out.strides[axis])
		}
		sizes[i] = t.shape[axis]
		at += t.shape[axis]
	}
	return record(out, "concat", ts, func(g *Tensor) ([]*Tensor, error) {
		gs := make([]*Tensor, len(sizes))
		at := 0
		for i, n := range sizes {
			sh := g.Shape()
			sh[axis] = n
			v := g.view(sh, g.Strides(), g.off+at*g.strides[axis])
			c, err := contiguousCopy("concat", v)
			if err != nil {
				return nil, err
			}
			gs[i] = c
			at += n
		}
		return gs, nil
	}), nil
}

// BroadcastTo returns t expanded to shape as a view (broadcast dims have stride 0).
func BroadcastTo(t *Tensor, shape ...int) (*Tensor, error) {
	if t == nil {
		return nil, opErr("broadcast_to", ErrArgument, "nil tensor")
	}
	b, ok := broadcastShape(t.shape, shape)
	if !ok || !sameShape(b, shape) {
		return nil, shapeErr("broadcast_to", fmt.Sprintf("cannot broadcast to %v", shape), t)
	}
	if _, ok := numel(shape); !ok {
		return nil, shapeErr("broadcast_to", fmt.Sprintf("target shape %v too large", shape), t)
	}
	out := t.view(append([]int(nil), shape...), bstrides(t, shape), t.off)
	in := t.Shape()
	return record(out, "broadcast_to", []*Tensor{t}, func(g *Tensor) ([]*Tensor, error) {
		gx, err := sumTo(g, in)
		return []*Tensor{gx}, err
	}), nil
}
