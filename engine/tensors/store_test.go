package tensors_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/lumenflow/lumen/engine/tensors"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// newHost returns a Store of limit bytes a job and its host.Tensors, whose calls carry their
// Scope as host.CallInfo.Context.
func newHost(limit int64) (*tensors.Store, host.Tensors) {
	s := tensors.New(limit)
	return s, s.Host(func(c *host.CallInfo) *tensors.Scope {
		sc, _ := c.Context.(*tensors.Scope)
		return sc
	})
}

func tcall(job string) (*host.CallInfo, *tensors.Scope) {
	sc := &tensors.Scope{}
	return &host.CallInfo{Job: job, Context: sc}, sc
}

func f32bytes(v ...float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func wantStatus(t *testing.T, err error, want abi.Status, substr string) {
	t.Helper()
	var se *host.StatusError
	var ae *abi.Error
	switch {
	case errors.As(err, &se) && se.Status == want && strings.Contains(se.Message, substr):
	case want == abi.ErrNotFound && errors.As(err, &ae) && ae.Kind == abi.KindNotFound && strings.Contains(ae.Message, substr):
	default:
		t.Fatalf("error %v, want %s containing %q", err, want, substr)
	}
}

func TestTensors_TrainStepThroughHandles(t *testing.T) {
	_, ti := newHost(0)
	ctx := context.Background()
	c, _ := tcall("j1")
	w, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{1, 2}, RequiresGrad: true}, f32bytes(1, -1))
	if err != nil {
		t.Fatal(err)
	}
	x, _ := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{1, 2}}, f32bytes(3, 4))
	y, err := ti.TensorOp(ctx, c, &abi.TensorOp{Op: "mul", Inputs: []int64{w, x}})
	if err != nil {
		t.Fatal(err)
	}
	loss, err := ti.TensorOp(ctx, c, &abi.TensorOp{Op: "sum", Inputs: []int64{y}})
	if err != nil {
		t.Fatal(err)
	}
	if err := ti.TensorBackward(ctx, c, loss); err != nil {
		t.Fatal(err)
	}
	g, err := ti.TensorGrad(ctx, c, w)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := ti.TensorRead(ctx, c, g); string(b) != string(f32bytes(3, 4)) {
		t.Fatalf("grad bytes %v, want those of [3 4]", b)
	}
	info, _ := ti.TensorInfo(ctx, c, loss)
	if info.DType != "f32" || len(info.Shape) != 0 {
		t.Fatalf("loss info %+v", info)
	}
	o, err := ti.OptimCreate(ctx, c, &abi.OptimRequest{Kind: abi.OptimSGD, Params: []int64{w}, LR: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if err := ti.OptimStep(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	if b, _ := ti.TensorRead(ctx, c, w); string(b) != string(f32bytes(-0.5, -3)) {
		t.Fatalf("w after a step: %v, want those of [-0.5 -3]", b)
	}
	if err := ti.OptimZeroGrad(ctx, c, o); err != nil {
		t.Fatal(err)
	}
	// Bad input names the op and the shapes, and is bad_payload.
	_, err = ti.TensorOp(ctx, c, &abi.TensorOp{Op: "matmul", Inputs: []int64{w, x}})
	wantStatus(t, err, abi.ErrBadPayload, "matmul")
	_, err = ti.OptimCreate(ctx, c, &abi.OptimRequest{Kind: abi.OptimAdamW, Params: []int64{x}, LR: 0.1})
	wantStatus(t, err, abi.ErrBadPayload, "requires grad")
	// An i64 tensor reads back as 8 bytes a value.
	ih, _ := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeI64, Shape: []int{2}}, nil)
	if b, _ := ti.TensorRead(ctx, c, ih); len(b) != 16 {
		t.Fatalf("i64 zeros read as %d bytes", len(b))
	}
}

func TestTensors_BudgetGivesLimit(t *testing.T) {
	_, ti := newHost(1 << 20)
	ctx := context.Background()
	c, _ := tcall("j1")
	_, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{512, 1024}}, nil)
	wantStatus(t, err, abi.ErrLimit, "budget")
	a, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{80, 1024}}, nil) // 320 KiB
	if err != nil {
		t.Fatal(err)
	}
	var hs []int64
	for range 2 {
		h, err := ti.TensorOp(ctx, c, &abi.TensorOp{Op: "exp", Inputs: []int64{a}})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	_, err = ti.TensorOp(ctx, c, &abi.TensorOp{Op: "exp", Inputs: []int64{a}})
	wantStatus(t, err, abi.ErrLimit, "")
	// Another job has a budget of its own.
	c2, _ := tcall("j2")
	if _, err := ti.TensorCreate(ctx, c2, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{128, 1024}}, nil); err != nil {
		t.Fatal(err)
	}
	// Freeing gives the bytes back.
	if err := ti.TensorFree(ctx, c, hs[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := ti.TensorOp(ctx, c, &abi.TensorOp{Op: "exp", Inputs: []int64{a}}); err != nil {
		t.Fatalf("after a free: %v", err)
	}
}

func TestTensors_HandlesAreScopedToTheJob(t *testing.T) {
	s, ti := newHost(0)
	ctx := context.Background()
	c1, _ := tcall("j1")
	c2, _ := tcall("j2")
	h, err := ti.TensorCreate(ctx, c1, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = ti.TensorRead(ctx, c2, h)
	wantStatus(t, err, abi.ErrNotFound, `no tensor 1 in job "j2"`)
	wantStatus(t, ti.TensorFree(ctx, c2, h), abi.ErrNotFound, "")
	_, err = ti.TensorOp(ctx, c2, &abi.TensorOp{Op: "relu", Inputs: []int64{h}})
	wantStatus(t, err, abi.ErrNotFound, "")
	wantStatus(t, ti.OptimStep(ctx, c2, h), abi.ErrNotFound, "no optimiser")
	if _, err := ti.TensorRead(ctx, c1, h); err != nil {
		t.Fatal(err)
	}
	s.DropJob("j1")
	_, err = ti.TensorRead(ctx, c1, h)
	wantStatus(t, err, abi.ErrNotFound, "")
}

func TestTensors_FreedWhenTheScopeEnds(t *testing.T) {
	s, ti := newHost(0)
	ctx := context.Background()
	c, sc := tcall("j1")
	x, _ := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{64, 64}, RequiresGrad: true}, nil)
	v, err := ti.TensorOp(ctx, c, &abi.TensorOp{Op: "reshape", Inputs: []int64{x}, Attrs: abi.TensorAttrs{Shape: []int{4096}}})
	if err != nil {
		t.Fatal(err)
	}
	o, _ := ti.OptimCreate(ctx, c, &abi.OptimRequest{Kind: abi.OptimAdamW, Params: []int64{x}, LR: 0.1})
	// Freeing a view drops its handle, not the viewed tensor.
	if err := ti.TensorFree(ctx, c, v); err != nil {
		t.Fatal(err)
	}
	if _, err := ti.TensorRead(ctx, c, x); err != nil {
		t.Fatalf("the viewed tensor after freeing its view: %v", err)
	}
	if used, _ := s.Stats("j1"); used < 64*64*4 {
		t.Fatalf("%d bytes used, want at least %d", used, 64*64*4)
	}
	s.Free(sc)
	if used, _ := s.Stats("j1"); used != 0 {
		t.Fatalf("%d bytes still used after the scope ended", used)
	}
	for _, h := range []int64{x, v} {
		_, err := ti.TensorRead(ctx, c, h)
		wantStatus(t, err, abi.ErrNotFound, "")
	}
	wantStatus(t, ti.OptimStep(ctx, c, o), abi.ErrNotFound, "")
}

// A call without a scope keeps what it makes until tensor_free or DropJob; Free of a nil scope
// and of an empty one frees nothing.
func TestTensors_NoScopeLivesUntilDropJob(t *testing.T) {
	s, ti := newHost(0)
	ctx := context.Background()
	c := &host.CallInfo{Job: "j1"}
	h, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{4}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Free(nil)
	s.Free(&tensors.Scope{})
	if _, err := ti.TensorRead(ctx, c, h); err != nil {
		t.Fatal(err)
	}
	if used, peak := s.Stats("j1"); used != 16 || peak != 16 {
		t.Fatalf("used %d, peak %d, want 16 and 16", used, peak)
	}
	s.DropJob("j1")
	_, err = ti.TensorRead(ctx, c, h)
	wantStatus(t, err, abi.ErrNotFound, `no tensor 1 in job "j1"`)
	if used, peak := s.Stats("j1"); used != 0 || peak != 0 {
		t.Fatalf("after DropJob: used %d, peak %d", used, peak)
	}
	// Host with no scopeOf: the same.
	h, err = s.Host(nil).TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeI32, Shape: []int{4}}, nil)
	if err != nil || h != 1 {
		t.Fatalf("handle %d, err %v; want handle 1 of a fresh job", h, err)
	}
}

// Calls of several jobs, several calls a job, each call with a scope of its own, run
// concurrently with Stats, Free and DropJob (run with -race).
func TestTensors_ConcurrentCalls(t *testing.T) {
	s, ti := newHost(0)
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			job := fmt.Sprintf("j%d", g%3)
			for range 20 {
				c, sc := tcall(job)
				x, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{4, 4}, RequiresGrad: true}, nil)
				// Job j0 is dropped meanwhile: a call of it that races DropJob may fail (its
				// handles are unknown after, its arena freed); the others may not.
				if err != nil {
					if job != "j0" {
						t.Errorf("tensor_create: %v", err)
					}
					continue
				}
				if _, err := ti.TensorOp(ctx, c, &abi.TensorOp{Op: "relu", Inputs: []int64{x}}); err != nil && job != "j0" {
					t.Errorf("relu: %v", err)
				}
				s.Stats(job)
				s.Free(sc)
			}
			if g == 0 {
				s.DropJob(job)
			}
		}()
	}
	wg.Wait()
	for _, job := range []string{"j1", "j2"} {
		if used, _ := s.Stats(job); used != 0 {
			t.Fatalf("job %s: %d bytes used after every scope ended", job, used)
		}
	}
}
