package host

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

// fakeTensors records what the host hands it and answers fixed values.
type fakeTensors struct {
	mu   sync.Mutex
	spec *abi.TensorSpec
	data []byte
	op   *abi.TensorOp
	opt  *abi.OptimRequest
	job  string
}

func (f *fakeTensors) TensorCreate(_ context.Context, c *CallInfo, s *abi.TensorSpec, d []byte) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.spec, f.data, f.job = s, d, c.Job
	return 7, nil
}

func (f *fakeTensors) TensorOp(_ context.Context, _ *CallInfo, op *abi.TensorOp) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.op = op
	if op.Op == "matmul" {
		return 0, &StatusError{Status: abi.ErrBadPayload, Message: "matmul: shapes [2 3] and [2 3] do not chain"}
	}
	if op.Op == "exp" {
		return 0, &StatusError{Status: abi.ErrLimit, Message: "budget"}
	}
	return 8, nil
}

func (f *fakeTensors) TensorRead(_ context.Context, _ *CallInfo, h int64) ([]byte, error) {
	if h != 7 {
		return nil, &abi.Error{Kind: abi.KindNotFound, Message: "no such tensor"}
	}
	return make([]byte, 24), nil
}

func (f *fakeTensors) TensorInfo(context.Context, *CallInfo, int64) (*abi.TensorInfo, error) {
	return &abi.TensorInfo{DType: "f32"}, nil // a scalar: shape must come out as []
}
func (f *fakeTensors) TensorBackward(context.Context, *CallInfo, int64) error { return nil }
func (f *fakeTensors) TensorGrad(context.Context, *CallInfo, int64) (int64, error) {
	return 9, nil
}
func (f *fakeTensors) TensorFree(context.Context, *CallInfo, int64) error { return nil }
func (f *fakeTensors) OptimCreate(_ context.Context, _ *CallInfo, r *abi.OptimRequest) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opt = r
	return 10, nil
}
func (f *fakeTensors) OptimStep(context.Context, *CallInfo, int64) error { return nil }
func (f *fakeTensors) OptimZeroGrad(context.Context, *CallInfo, int64) error {
	panic("optimiser exploded")
}

var tensorGrants = allEngineGrants

// tensorCall calls tensor host function fn through hostcall.wasm and returns its value.
func tensorCall(t *testing.T, r *Runtime, m *Module, fn string, a, b, c int64, payload []byte) int64 {
	t.Helper()
	i := -1
	for k, n := range hostcallFns {
		if n == fn {
			i = k
		}
	}
	res, err := r.Call(context.Background(), CallRequest{Module: m, Function: "call", Job: "jt",
		Input: hostcallInput(byte(i), a, b, c, payload), Grants: tensorGrants})
	if err != nil {
		t.Fatalf("%s: %v", fn, err)
	}
	return int64(binary.LittleEndian.Uint64(res.Output))
}

func TestTensors_HostFunctionsReachTheEngine(t *testing.T) {
	f := &fakeTensors{}
	r := newTestRuntime(t, Config{Tensors: f})
	m := mustCompile(t, r, "hostcall")
	spec := []byte(`{"dtype":"f32","shape":[2,3]}`)
	data := make([]byte, 24)
	data[0] = 0x3f
	payload := append(append([]byte{}, spec...), data...)
	dataAt := int64(hostcallPayload + len(spec))
	if got := tensorCall(t, r, m, abi.FnTensorCreate, hostcallPayload, int64(len(spec)), dataAt|int64(len(data))<<32, payload); got != 7 {
		t.Fatalf("tensor_create = %d", got)
	}
	if f.job != "jt" || f.spec.DType != "f32" || len(f.data) != 24 || f.data[0] != 0x3f {
		t.Fatalf("engine saw job %q, spec %+v, data %v", f.job, f.spec, f.data)
	}
	// Data of the wrong length, a bad spec, a bad op: bad_payload before the engine.
	if got := tensorCall(t, r, m, abi.FnTensorCreate, hostcallPayload, int64(len(spec)), dataAt|int64(5)<<32, payload); got != abi.ErrBadPayload.Code() {
		t.Fatalf("tensor_create with 5 data bytes = %d", got)
	}
	for _, p := range []string{`{"dtype":"f64","shape":[1]}`, `{"op":"fft","inputs":[1]}`, `{"kind":"sgd","params":[],"lr":1}`} {
		fn := abi.FnTensorCreate
		if strings.Contains(p, `"op"`) {
			fn = abi.FnTensorOp
		} else if strings.Contains(p, `"kind"`) {
			fn = abi.FnOptimCreate
		}
		if got := tensorCall(t, r, m, fn, hostcallPayload, int64(len(p)), 0, []byte(p)); got != abi.ErrBadPayload.Code() {
			t.Errorf("%s(%s) = %d, want bad_payload", fn, p, got)
		}
	}
	op := []byte(`{"op":"conv2d","inputs":[1,2],"attrs":{"padding":1}}`)
	if got := tensorCall(t, r, m, abi.FnTensorOp, hostcallPayload, int64(len(op)), 0, op); got != 8 || f.op.Attrs.Padding != 1 {
		t.Fatalf("tensor_op = %d, engine saw %+v", got, f.op)
	}
	// The engine's statuses pass through.
	for opName, want := range map[string]abi.Status{"matmul": abi.ErrBadPayload, "exp": abi.ErrLimit} {
		p := []byte(`{"op":"` + opName + `","inputs":[1` + map[bool]string{true: ",2", false: ""}[opName == "matmul"] + `]}`)
		if got := tensorCall(t, r, m, abi.FnTensorOp, hostcallPayload, int64(len(p)), 0, p); got != want.Code() {
			t.Errorf("tensor_op %s = %d, want %s", opName, got, want)
		}
	}
	opt := []byte(`{"kind":"adamw","params":[7],"lr":0.001}`)
	if got := tensorCall(t, r, m, abi.FnOptimCreate, hostcallPayload, int64(len(opt)), 0, opt); got != 10 || f.opt.Params[0] != 7 {
		t.Fatalf("optim_create = %d", got)
	}
	cases := []struct {
		fn   string
		h    int64
		want int64
	}{
		{abi.FnTensorRead, 7, 24}, {abi.FnTensorRead, 8, abi.ErrNotFound.Code()},
		{abi.FnTensorInfo, 7, int64(len(`{"dtype":"f32","shape":[]}`))},
		{abi.FnTensorBackward, 7, 0}, {abi.FnTensorGrad, 7, 9}, {abi.FnTensorFree, 7, 0},
		{abi.FnOptimStep, 10, 0}, {abi.FnOptimZeroGrad, 10, abi.ErrInternal.Code()}, // a panic of the engine
		{abi.FnTensorFree, -3, abi.ErrNotFound.Code()},
	}
	for _, c := range cases {
		if got := tensorCall(t, r, m, c.fn, c.h, 0, 0, nil); got != c.want {
			t.Errorf("%s(%d) = %d, want %d", c.fn, c.h, got, c.want)
		}
	}
}

func TestTensors_UnavailableWithoutAnEngine(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "hostcall")
	spec := []byte(`{"dtype":"f32","shape":[2]}`)
	if got := tensorCall(t, r, m, abi.FnTensorCreate, hostcallPayload, int64(len(spec)), 0, spec); got != abi.ErrUnavailable.Code() {
		t.Fatalf("tensor_create = %d, want unavailable", got)
	}
	if got := tensorCall(t, r, m, abi.FnOptimStep, 1, 0, 0, nil); got != abi.ErrUnavailable.Code() {
		t.Fatalf("optim_step = %d, want unavailable", got)
	}
}

func TestTensors_DeniedWithoutTheCapability(t *testing.T) {
	r := newTestRuntime(t, Config{Tensors: &fakeTensors{}})
	m := mustCompile(t, r, "hostcall")
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "call", Job: "jt",
		Input: hostcallInput(15, 1, 0, 0, nil), Grants: Grants{Capabilities: []abi.Capability{abi.CapObjects, abi.CapTasks, abi.CapActors}}})
	var ae *abi.Error
	if !errors.As(err, &ae) || ae.Kind != abi.KindDenied || !strings.Contains(ae.Message, `"tensors"`) {
		t.Fatalf("call without the tensors grant: %v", err)
	}
}
