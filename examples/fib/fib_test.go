package fib_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine/client"
	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// Nested tasks on a real `lumen up`: fib(13) spawns 753 tasks, each waiting on two children,
// on a node with two cores, which only completes because a waiting task gives its core back.
func TestFib_EndToEnd(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "fib", "1.0.0")
	c, ctx := node.Client(), context.Background()

	var sub struct{ Ref int64 }
	if err := c.JSON(ctx, "POST", "/v1/tasks", map[string]any{"module": "fib@1.0.0", "function": "fib", "args": 13, "grants": []string{"objects", "tasks"}}, &sub); err != nil {
		t.Fatal(err)
	}
	b, err := c.Get(ctx, "", sub.Ref, 2*time.Minute)
	if err != nil || string(b) != "233" {
		t.Fatalf("fib(13) = %s, %v", b, err)
	}
	// Without the tasks capability the module is refused, and says why.
	err = c.JSON(ctx, "POST", "/v1/tasks", map[string]any{"module": "fib@1.0.0", "function": "fib", "args": 3}, &sub)
	if err == nil {
		_, err = c.Get(ctx, "", sub.Ref, time.Minute)
	}
	var ae *client.Error
	if !errors.As(err, &ae) || ae.Kind != "denied" {
		t.Fatalf("fib without grants: %v", err)
	}
}
