package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/lumenflow/lumen/sdk/abi"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { removeGoGuests() }))
}

// testWasm reads testdata/<name>.wasm.
func testWasm(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newTestRuntime returns a Runtime closed at the end of the test.
func newTestRuntime(t testing.TB, cfg Config) *Runtime {
	t.Helper()
	r, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return r
}

func mustCompile(t testing.TB, r *Runtime, name string) *Module {
	t.Helper()
	m, err := r.Compile(context.Background(), testWasm(t, name))
	if err != nil {
		t.Fatalf("compile %s: %v", name, err)
	}
	return m
}

// abiErr returns err as an *abi.Error, failing the test when it is not one.
func abiErr(t testing.TB, err error) *abi.Error {
	t.Helper()
	var ae *abi.Error
	if !errors.As(err, &ae) {
		t.Fatalf("error %v (%T) is not an *abi.Error", err, err)
	}
	return ae
}

// wantKind checks err is an *abi.Error of kind (and limit, when given).
func wantKind(t testing.TB, err error, kind abi.ErrorKind, limit string) *abi.Error {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", kind)
	}
	ae := abiErr(t, err)
	if ae.Kind != kind || ae.Limit != limit {
		t.Fatalf("error %v: kind %q limit %q, want %q %q", err, ae.Kind, ae.Limit, kind, limit)
	}
	return ae
}

func callOK(t testing.TB, r *Runtime, req CallRequest) *Result {
	t.Helper()
	res, err := r.Call(context.Background(), req)
	if err != nil {
		t.Fatalf("call %s: %v", req.Function, err)
	}
	return res
}
