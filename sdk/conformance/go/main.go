// Command conformance is the conformance guest in Go: the same functions, with the same results,
// as the C, Rust and AssemblyScript guests beside it (see ../conformance_test.go). Build it with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o conformance.wasm .
package main

import (
	"encoding/json"
	"unsafe"

	"github.com/lumenflow/lumen/sdk/abi"
	lumen "github.com/lumenflow/lumen/sdk/go"
)

type addArgs struct{ A, B int64 }

type greetArgs struct{ Name string }

type counter struct{ N int64 }

// hoard keeps what grow allocates reachable.
var hoard [][]byte

// sink keeps loop's arithmetic from being optimised away.
var sink uint64

func init() {
	lumen.Require(abi.CapObjects, abi.CapTasks, abi.CapActors, abi.CapTensors)

	lumen.BytesTask("echo", func(b []byte) ([]byte, error) { return b, nil })
	lumen.Task("add", func(in addArgs) (int64, error) { return in.A + in.B, nil })
	lumen.Task("greet", func(in greetArgs) (string, error) {
		lumen.Logf("greeting %s", in.Name)
		return "hello, " + in.Name, nil
	})
	lumen.Task("fail", func(struct{}) (int, error) { return 0, lumen.NewError("E_CONF", "conformance failure") })
	lumen.Task("trap", func(struct{}) (int, error) {
		// An access past the end of linear memory: a WebAssembly trap, which no recover sees.
		*(*byte)(unsafe.Add(unsafe.Pointer(&sink), 0xf0000000)) = 1
		return 0, nil
	})
	lumen.BytesTask("nested", func(b []byte) ([]byte, error) {
		ref, err := lumen.SubmitBytes("echo", b)
		if err != nil {
			return nil, err
		}
		return ref.GetBytes()
	})

	lumen.Task("nested_fail", func(struct{}) (int, error) {
		ref, err := lumen.Submit("fail", nil)
		if err != nil {
			return 0, err
		}
		return lumen.Get[int](ref)
	})

	c := lumen.Actor("Counter", func(start int64) (*counter, error) { return &counter{N: start}, nil })
	lumen.Method(c, "incr", func(s *counter, by int64) (int64, error) { s.N += by; return s.N, nil })
	lumen.Task("counter", func(struct{}) (int64, error) {
		a, err := lumen.NewActor("Counter", 0)
		if err != nil {
			return 0, err
		}
		var last lumen.Ref
		for range 3 {
			if last, err = a.Call("incr", 1); err != nil {
				return 0, err
			}
		}
		return lumen.Get[int64](last)
	})

	lumen.BytesTask("objects", func(b []byte) ([]byte, error) {
		ref, err := lumen.PutBytes(b)
		if err != nil {
			return nil, err
		}
		out, err := ref.GetBytes()
		if err != nil {
			return nil, err
		}
		return out, ref.Release()
	})
	lumen.Task("tensors", func(struct{}) (tensorResult, error) {
		a, err := lumen.NewTensor([]int{2, 2}, []float32{1, 2, 3, 4}, true)
		if err != nil {
			return tensorResult{}, err
		}
		b, err := lumen.NewTensor([]int{2, 2}, []float32{5, 6, 7, 8}, false)
		if err != nil {
			return tensorResult{}, err
		}
		c, err := lumen.MatMul(a, b)
		if err != nil {
			return tensorResult{}, err
		}
		loss, err := c.Sum()
		if err != nil {
			return tensorResult{}, err
		}
		if err := loss.Backward(); err != nil {
			return tensorResult{}, err
		}
		grad, err := a.Grad()
		if err != nil {
			return tensorResult{}, err
		}
		var res tensorResult
		if res.C, err = ints(c); err != nil {
			return res, err
		}
		if res.Grad, err = ints(grad); err != nil {
			return res, err
		}
		return res, grad.Free()
	})
	lumen.Task("missing", func(struct{}) (int, error) {
		var ref lumen.Ref
		if err := json.Unmarshal([]byte(`{"$ref":999999}`), &ref); err != nil {
			return 0, err
		}
		if _, err := ref.GetBytesTimeout(0); err != nil {
			return 0, err
		}
		return 0, lumen.NewError("E_CONF", "object 999999 exists")
	})

	lumen.Task("loop", func(struct{}) (int, error) {
		for n := uint64(1); ; n = n*31 + 7 {
			sink = n
		}
	})
	lumen.Task("grow", func(struct{}) (int, error) {
		for i := 0; ; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 4096 {
				b[j] = byte(i)
			}
			hoard = append(hoard, b)
		}
	})
}

// tensorResult is what the tensors task returns: the product and the gradient, as integers.
type tensorResult struct {
	C    []int64 `json:"c"`
	Grad []int64 `json:"grad"`
}

// ints reads a float32 tensor's values as integers.
func ints(t *lumen.Tensor) ([]int64, error) {
	v, err := t.Float32s()
	if err != nil {
		return nil, err
	}
	out := make([]int64, len(v))
	for i, x := range v {
		out[i] = int64(x)
	}
	return out, nil
}

func main() {}
