package hello_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/lumenflow/lumen/engine/client"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// The example end to end: its guest built from source, uploaded to a real `lumen up` under its
// lumen.json name, and each of its tasks called over the REST API with the output checked.
func TestHello_EndToEnd(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "hello", "1.0.0")
	c, ctx := node.Client(), context.Background()

	res, err := c.Call(ctx, "hello@1.0.0", "add", []byte(`{"A":40,"B":2}`))
	if err != nil || string(res.Output) != "42" {
		t.Fatalf("add: %+v %v", res, err)
	}
	res, err = c.Call(ctx, "hello", "wordcount", []byte("The cat and the hat. The end!"))
	if err != nil || res.OutputText != "the 3\nand 1\ncat 1\nend 1\nhat 1\n" || !strings.Contains(res.Log, "5 distinct words") {
		t.Fatalf("wordcount: %+v %v", res, err)
	}
	_, err = c.Call(ctx, "hello", "divide", []byte(`{"A":1,"B":0}`))
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Status != 422 || ae.Kind != "guest_error" || ae.Code != "division_by_zero" {
		t.Fatalf("divide by zero: %v", err)
	}
	if _, err := c.Call(ctx, "hello", "nope", nil); !errors.As(err, &ae) || ae.Status != 404 {
		t.Fatalf("unknown function: %v", err)
	}
}
