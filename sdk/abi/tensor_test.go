package abi

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestDecodeTensorRequests(t *testing.T) {
	spec := func(b []byte) error { _, err := DecodeTensorSpec(b); return err }
	op := func(b []byte) error { _, err := DecodeTensorOp(b); return err }
	optim := func(b []byte) error { _, err := DecodeOptimRequest(b); return err }
	cases := []struct {
		dec  func([]byte) error
		in   string
		want string // "" accepts
	}{
		{spec, `{"dtype":"f32","shape":[2,3],"requires_grad":true}`, ""},
		{spec, `{"dtype":"i64","shape":[]}`, ""},
		{spec, `{"dtype":"f16","shape":[2]}`, `dtype "f16"`},
		{spec, `{"dtype":"f32","shape":[2,0]}`, "shape[1]: 0 is not a positive size"},
		{spec, `{"dtype":"f32","shape":[65536,65536]}`, "more than"},
		{spec, `{"dtype":"f32","shape":[1,1,1,1,1,1,1,1,1]}`, "rank 9"},
		{spec, `{"dtype":"i32","shape":[2],"requires_grad":true}`, "requires_grad on a i32"},
		{spec, `{"dtype":"f32","shape":[2],"grad":true}`, `unknown field "grad"`},
		{op, `{"op":"matmul","inputs":[1,2]}`, ""},
		{op, `{"op":"conv2d","inputs":[1,2,3],"attrs":{"stride":1,"padding":1}}`, ""},
		{op, `{"op":"sum","inputs":[1],"attrs":{"axes":[0,-1],"keepdim":true}}`, ""},
		{op, `{"op":"reshape","inputs":[1],"attrs":{"shape":[-1,4]}}`, ""},
		{op, `{"op":"reshape","inputs":[1],"attrs":{"shape":[-1,-1]}}`, "not a positive size"},
		{op, `{"op":"matmul","inputs":[1]}`, "tensor op matmul: 1 inputs, want 2"},
		{op, `{"op":"conv2d","inputs":[1]}`, "1 inputs, want 2 to 3"},
		{op, `{"op":"fft","inputs":[1]}`, `unknown op "fft"`},
		{op, `{"op":"relu","inputs":[0]}`, "handle 0 is not positive"},
		{op, `{"op":"relu","inputs":[1],"attrs":{"axis":1}}`, `attribute "axis" is not one it takes`},
		{op, `{"op":"softmax","inputs":[1],"attrs":{"axis":"x"}}`, "attrs"},
		{op, `{"op":"dropout","inputs":[1],"attrs":{"p":1}}`, "dropout p 1 outside"},
		{op, `{"op":"max_pool2d","inputs":[1],"attrs":{"kernel":-2}}`, "kernel -2"},
		{optim, `{"kind":"adamw","params":[1,2],"lr":0.001,"betas":[0.9,0.999],"eps":1e-8,"weight_decay":0.01}`, ""},
		{optim, `{"kind":"sgd","params":[1],"lr":0.1,"momentum":0.9}`, ""},
		{optim, `{"kind":"rmsprop","params":[1],"lr":0.1}`, `kind "rmsprop"`},
		{optim, `{"kind":"sgd","params":[],"lr":0.1}`, "0 params"},
		{optim, `{"kind":"sgd","params":[1],"lr":0}`, "lr 0 outside"},
		{optim, `{"kind":"sgd","params":[1],"lr":0.1,"betas":[0.9,0.9]}`, "adamw's"},
		{optim, `{"kind":"adamw","params":[1],"lr":0.1,"betas":[0.9]}`, "1 betas"},
	}
	for _, c := range cases {
		err := c.dec([]byte(c.in))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.in, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one containing %q", c.in, err, c.want)
		}
	}
}

func TestTensorSpec_CheckData(t *testing.T) {
	s := &TensorSpec{DType: DTypeI64, Shape: []int{2, 3}}
	if s.CheckData(0) != nil || s.CheckData(48) != nil {
		t.Fatal("valid data lengths refused")
	}
	if err := s.CheckData(47); err == nil || !strings.Contains(err.Error(), "want 48") {
		t.Fatalf("CheckData(47) = %v", err)
	}
}

func TestTensorOps_EveryOpDecodes(t *testing.T) {
	for _, name := range TensorOpNames() {
		spec := TensorOps[name]
		inputs := make([]int64, spec.MinInputs)
		for i := range inputs {
			inputs[i] = int64(i + 1)
		}
		b, _ := json.Marshal(map[string]any{"op": name, "inputs": inputs})
		if _, err := DecodeTensorOp(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func FuzzDecodeTensorRequests(f *testing.F) {
	f.Add([]byte(`{"dtype":"f32","shape":[2,3],"requires_grad":true}`))
	f.Add([]byte(`{"op":"conv2d","inputs":[1,2,3],"attrs":{"stride":1,"padding":1}}`))
	f.Add([]byte(`{"op":"reshape","inputs":[1],"attrs":{"shape":[-1,4]}}`))
	f.Add([]byte(`{"op":"dropout","inputs":[1],"attrs":{"p":0.5,"seed":7}}`))
	f.Add([]byte(`{"kind":"adamw","params":[1,2],"lr":0.001,"betas":[0.9,0.999],"eps":1e-8}`))
	f.Add([]byte(`{"kind":"sgd","params":[1],"lr":0.1,"momentum":0.9,"weight_decay":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := DecodeTensorSpec(b); err == nil {
			if s.Numel() < 1 || s.Numel() > MaxTensorElems {
				t.Fatalf("accepted spec of %d elements", s.Numel())
			}
			_ = s.CheckData(len(b))
		}
		if op, err := DecodeTensorOp(b); err == nil {
			again, _ := json.Marshal(op)
			if _, err := DecodeTensorOp(again); err != nil {
				t.Fatalf("accepted op does not round-trip: %v\n%s", err, again)
			}
		}
		_, _ = DecodeOptimRequest(b)
	})
}
