package host_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/lumenflow/lumen/host"
	"github.com/lumenflow/lumen/sdk/abi"
)

func ExampleRuntime_Call() {
	ctx := context.Background()
	r, err := host.New(ctx, host.Config{})
	if err != nil {
		panic(err)
	}
	defer r.Close(ctx)
	wasm, _ := os.ReadFile("testdata/good.wasm")
	m, err := r.Compile(ctx, wasm)
	if err != nil {
		panic(err)
	}
	res, err := r.Call(ctx, host.CallRequest{Module: m, Function: "add", Input: []byte(`{"a":40,"b":2}`), Job: "example"})
	if err != nil {
		panic(err)
	}
	fmt.Printf("%s\n", res.Output)
	// Output: 42
}

func ExampleRuntime_Call_timeout() {
	ctx := context.Background()
	r, err := host.New(ctx, host.Config{})
	if err != nil {
		panic(err)
	}
	defer r.Close(ctx)
	wasm, _ := os.ReadFile("testdata/hostile.wasm")
	m, err := r.Compile(ctx, wasm)
	if err != nil {
		panic(err)
	}
	_, err = r.Call(ctx, host.CallRequest{Module: m, Function: "loop", Limits: host.Limits{Timeout: 50 * time.Millisecond}})
	var ae *abi.Error
	if errors.As(err, &ae) {
		fmt.Println(ae.Kind, ae.Limit)
	}
	fmt.Println(err)
	// Output:
	// limit_exceeded deadline
	// limit_exceeded (deadline): the call ran past its deadline (timeout 50ms)
}

func ExampleRuntime_Call_guestError() {
	ctx := context.Background()
	r, err := host.New(ctx, host.Config{})
	if err != nil {
		panic(err)
	}
	defer r.Close(ctx)
	wasm, _ := os.ReadFile("testdata/good.wasm")
	m, _ := r.Compile(ctx, wasm)
	_, err = r.Call(ctx, host.CallRequest{Module: m, Function: "fail", Input: []byte(`{"code":"E_EMPTY","message":"nothing to do"}`)})
	fmt.Println(err)
	// Output: guest_error: nothing to do
}
