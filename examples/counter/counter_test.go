package counter_test

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// An actor over the REST API of a real `lumen up`: created with a name, found by it, its calls
// applied in order, and a clear error once it is killed.
func TestCounter_EndToEnd(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "counter", "1.0.0")
	c, ctx := node.Client(), context.Background()

	var created struct{ Actor int64 }
	if err := c.JSON(ctx, "POST", "/v1/actors", map[string]any{"module": "counter@1.0.0", "actor": "Counter", "args": 10, "name": "clicks"}, &created); err != nil {
		t.Fatal(err)
	}
	var found struct{ Actor int64 }
	if err := c.JSON(ctx, "GET", "/v1/actors?name=clicks&namespace=default", nil, &found); err != nil || found.Actor != created.Actor {
		t.Fatalf("lookup by name: %+v %v", found, err)
	}
	id := strconv.FormatInt(created.Actor, 10)
	var ref struct{ Ref int64 }
	for i := 1; i <= 100; i++ {
		if err := c.JSON(ctx, "POST", "/v1/actors/"+id+"/call/incr", []byte(strconv.Itoa(i)), &ref); err != nil {
			t.Fatal(err)
		}
	}
	// 10 + 1 + 2 + ... + 100: every call applied, in order, exactly once.
	if b, err := c.Get(ctx, "", ref.Ref, 30*time.Second); err != nil || string(b) != "5060" {
		t.Fatalf("after 100 calls: %s %v", b, err)
	}
	if _, _, err := c.Do(ctx, "DELETE", "/v1/actors/"+id, nil); err != nil {
		t.Fatal(err)
	}
	// The call fails at once if the actor has ended, or through its result while it stops.
	if err := c.JSON(ctx, "POST", "/v1/actors/"+id+"/call/get", []byte("{}"), &ref); err == nil {
		if _, err := c.Get(ctx, "", ref.Ref, 30*time.Second); err == nil {
			t.Fatal("a call to a killed actor succeeded")
		}
	}
}
