package host

import (
	"context"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/sdk/abi"
)

func TestCall_EchoAddAndLog(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	if res := callOK(t, r, CallRequest{Module: m, Function: "echo", Input: []byte("hello")}); string(res.Output) != "hello" {
		t.Fatalf("echo: %q", res.Output)
	}
	if res := callOK(t, r, CallRequest{Module: m, Function: "add", Input: []byte(`{"a":40,"b":2}`)}); string(res.Output) != "42" {
		t.Fatalf("add: %q", res.Output)
	}
	res := callOK(t, r, CallRequest{Module: m, Function: "log", Input: []byte("hi there")})
	if string(res.Output) != "ok" || string(res.Log) != "INFO hi there\nhi there" {
		t.Fatalf("log: output %q log %q", res.Output, res.Log)
	}
}

func TestCall_GuestErrorKeepsInstance(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	callOK(t, r, CallRequest{Module: m, Function: "bump"})
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "fail", Input: []byte(`{"code":"E1","message":"nope"}`)})
	ae := wantKind(t, err, abi.KindGuest, "")
	if ae.Code != "E1" || ae.Message != "nope" {
		t.Fatalf("guest error %+v", ae)
	}
	if res := callOK(t, r, CallRequest{Module: m, Function: "bump"}); string(res.Output) != "2" {
		t.Fatalf("instance not reused after a guest error: bump = %q", res.Output)
	}
}

func TestCall_TrapDiscardsInstance(t *testing.T) {
	r := newTestRuntime(t, Config{})
	m := mustCompile(t, r, "good")
	callOK(t, r, CallRequest{Module: m, Function: "bump"})
	_, err := r.Call(context.Background(), CallRequest{Module: m, Function: "trap"})
	ae := wantKind(t, err, abi.KindTrap, "")
	if !strings.Contains(ae.Message, "unreachable") {
		t.Fatalf("trap message %q", ae.Message)
	}
	if res := callOK(t, r, CallRequest{Module: m, Function: "bump"}); string(res.Output) != "1" {
		t.Fatalf("instance reused after a trap: bump = %q", res.Output)
	}
}
