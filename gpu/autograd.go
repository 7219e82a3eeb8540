package gpu

import "fmt"

// node records how a tensor was computed so that Backward can send gradients to its inputs.
type node struct {
	op     string
	inputs []*Tensor
	// backward maps the gradient of the output to gradients of the inputs (nil entries for
	// inputs that take none). It must not record new graph nodes: closures work on detached
	// tensors.
	backward func(g *Tensor) ([]*Tensor, error)
}

// record attaches a graph node to out when any input requires grad.
func record(out *Tensor, op string, inputs []*Tensor, backward func(g *Tensor) ([]*Tensor, error)) *Tensor {
	for _, in := range inputs {
		if in != nil && in.requiresGrad {
			out.requiresGrad = true
			out.node = &node{op: op, inputs: inputs, backward: backward}
			return out
		}
	}
	return out
}

// RequiresGrad reports whether gradients flow to or through this tensor.
func (t *Tensor) RequiresGrad() bool { return t.requiresGrad }

// SetRequiresGrad marks a leaf tensor (a parameter) as wanting a gradient and returns it.
func (t *Tensor) SetRequiresGrad(v bool) *Tensor {
	t.requiresGrad = v
	if !v {
		t.node = nil
	}
	return t
}

// Grad is the gradient accumulated by Backward for a leaf that requires grad (nil before).
func (t *Tensor) Grad() *Tensor { return t.grad }

// ZeroGrad drops the accumulated gradient.
func (t *Tensor) ZeroGrad() { t.grad = nil }

// Detach returns a view of the same storage with no autograd history.
func (t *Tensor) Detach() *Tensor { return t.view(t.shape, t.strides, t.off) }

// Backward computes the gradient of the scalar loss with respect to every leaf tensor that
// requires grad and that loss depends on, and adds it to that leaf's Grad. The graph is kept,
// so Backward may run again (gradients accumulate).
func Backward(loss *Tensor) error {
	if loss == nil || loss.Numel() != 1 {
		return shapeErr("backward", "loss must have exactly one element", loss)
	}
	seed, err := alloc("backward", loss.st.arena, CPU, Float32, loss.shape)
	if err != nil {
		return err
	}
	seed.st.f32[0] = 1
	return BackwardWith(loss, seed)
}

// BackwardWith is Backward for a non-scalar output, given the gradient of the loss with respect
// to it.
func BackwardWith(out, grad *Tensor) error {
	if out == nil || !out.requiresGrad {
		return opErr("backward", ErrNoGrad, "output does not require grad")
	}
	if !sameShape(out.shape, grad.shape) {
		return shapeErr("backward", "gradient shape differs from the output's", out, grad)
	}
	// Topological order by depth-first search from out.
	var order []*Tensor
	seen := map[*Tensor]bool{}
	var visit func(t *Tensor)
	visit = func(t *Tensor) {
		seen[t] = true
		if t.node != nil {
			for _, in := range t.node.inputs {
				if in != nil && in.requiresGrad && !seen[in] {
					visit(in)
				}
			}
		}
		order = append(order, t)
	}
	visit(out)
	grads := map[*Tensor]*Tensor{out: grad}
	for i := len(order) - 1; i >= 0; i-- {
		t := order[i]
		g := grads[t]
		if g == nil {
			continue
		}
		delete(grads, t)
		if t.node == nil {
			if err := accumulate(t, g); err != nil {
				return err
			}
			continue
		}
		gin, err := t.node.backward(g)
		if err != nil {
			return fmt.Errorf("backward of %s: %w", t.node.op, err)
		}
		for j, in := range t.node.inputs {
			if in == nil || !in.requiresGrad || j >= len(gin) || gin[j] == nil {
				continue
			}
			gj := gin[j]
			if !sameShape(gj.shape, in.shape) {
				return fmt.Errorf("backward of %s: gradient %v for input %d of shape %v: %w", t.node.op, gj.shape, j, in.shape, ErrShape)
			}
			if prev := grads[in]; prev != nil {
				sum, err := addRaw("backward", prev, gj)
				if err != nil {
					return err
				}
				grads[in] = sum
			} else {
				grads[in] = gj
			}
		}
	}
	return nil
}

func accumulate(leaf, g *Tensor) error {
	if leaf.grad == nil {
		c, err := contiguousCopy("backward", g)
		if err != nil {
			return err
		}
		leaf.grad = c
		return nil
	}
	sum, err := addRaw("backward", leaf.grad, g)
	if err != nil {
		return err
	}
	leaf.grad = sum
	return nil
}

func sameShape(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
