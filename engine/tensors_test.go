package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/lumenflow/lumen/engine/objects"
	"github.com/lumenflow/lumen/engine/tensors"
	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

// The store's own behaviour (handles, budgets, views, ops, optimisers) is tested in package
// engine/tensors; these test the engine's wiring: which scope a call's tensors join, and when it
// ends.

// newTensorEngine is just enough of an Engine for its tensors: the store, the host.Tensors that
// Open gives the host, and endScope.
func newTensorEngine() (*Engine, host.Tensors) {
	e := &Engine{tensors: tensors.New(0), objects: objects.New(0)}
	return e, e.tensors.Host(tensorScope)
}

func wantTensorNotFound(t *testing.T, err error) {
	t.Helper()
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindNotFound {
		t.Fatalf("error %v, want not_found", err)
	}
}

// A call's tensors and optimisers join its scope and end with it (endScope); what the store
// does with views and optimisers is tested in package engine/tensors.
func TestTensors_FreedWhenTheCallEnds(t *testing.T) {
	e, ti := newTensorEngine()
	ctx := context.Background()
	cc := &callContext{}
	c := &host.CallInfo{Job: "j1", Context: cc}
	x, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{64, 64}, RequiresGrad: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := ti.OptimCreate(ctx, c, &abi.OptimRequest{Kind: abi.OptimAdamW, Params: []int64{x}, LR: 0.1})
	if err != nil {
		t.Fatal(err)
	}
	if used, _ := e.Tensors().Stats("j1"); used < 64*64*4 {
		t.Fatalf("%d bytes used, want at least %d", used, 64*64*4)
	}
	e.endScope(cc, nil, nil, false)
	if used, _ := e.Tensors().Stats("j1"); used != 0 {
		t.Fatalf("%d bytes still used after the call ended", used)
	}
	_, err = ti.TensorRead(ctx, c, x)
	wantTensorNotFound(t, err)
	wantTensorNotFound(t, ti.OptimStep(ctx, c, o))
}

// An actor's calls share its callContext, so what one call makes outlives the call and ends with
// the actor.
func TestTensors_ActorCallsShareTheActorsScope(t *testing.T) {
	e, ti := newTensorEngine()
	ctx := context.Background()
	actor := &callContext{}
	call1 := &host.CallInfo{Job: "j1", Function: "A.init", Context: actor}
	call2 := &host.CallInfo{Job: "j1", Function: "A.step", Context: actor}
	w, err := ti.TensorCreate(ctx, call1, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{8}, RequiresGrad: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Another call, of its own scope, ends; the actor's tensor lives on.
	other := &callContext{}
	if _, err := ti.TensorCreate(ctx, &host.CallInfo{Job: "j1", Context: other}, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{8}}, nil); err != nil {
		t.Fatal(err)
	}
	e.endScope(other, nil, nil, false)
	g, err := ti.TensorOp(ctx, call2, &abi.TensorOp{Op: "relu", Inputs: []int64{w}})
	if err != nil {
		t.Fatalf("the actor's tensor in its next call: %v", err)
	}
	if used, _ := e.Tensors().Stats("j1"); used != 2*8*4 {
		t.Fatalf("%d bytes used, want %d", used, 2*8*4)
	}
	e.endScope(actor, nil, nil, false)
	if used, _ := e.Tensors().Stats("j1"); used != 0 {
		t.Fatalf("%d bytes still used after the actor ended", used)
	}
	for _, h := range []int64{w, g} {
		_, err := ti.TensorRead(ctx, call2, h)
		wantTensorNotFound(t, err)
	}
}

func TestTensors_DropJobTensors(t *testing.T) {
	e, ti := newTensorEngine()
	ctx := context.Background()
	c := &host.CallInfo{Job: "j1", Context: &callContext{}}
	h, err := ti.TensorCreate(ctx, c, &abi.TensorSpec{DType: abi.DTypeF32, Shape: []int{2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Tensors().DropJob("j1")
	_, err = ti.TensorRead(ctx, c, h)
	wantTensorNotFound(t, err)
	if used, peak := e.Tensors().Stats("j1"); used != 0 || peak != 0 {
		t.Fatalf("after DropJobTensors: used %d, peak %d", used, peak)
	}
}
