package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// The example's three-stage workflow compiled once on a real `lumen up` and executed 10,000
// times over the REST API, each output checked.
func TestPipeline_CompiledTenThousandTimes(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("pipeline.json")
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "pipeline", "1.0.0")
	c, ctx := node.Client(), context.Background()
	var compiled struct{ ID string }
	if err := c.JSON(ctx, "POST", "/v1/compiled", doc, &compiled); err != nil {
		t.Fatal(err)
	}
	const n = 10_000
	start := time.Now()
	for i := 0; i < n; i++ {
		celsius := float64(i%200) - 50
		in := fmt.Sprintf("%q", fmt.Sprintf("s%d=%g", i, celsius))
		out, _, err := c.Do(ctx, "POST", "/v1/compiled/"+compiled.ID+"/execute", []byte(in))
		if err != nil {
			t.Fatalf("execution %d: %v", i, err)
		}
		want := fmt.Sprintf("%q", fmt.Sprintf("s%d: %.1f°C = %.1f°F", i, celsius, celsius*9/5+32))
		if string(out) != want {
			t.Fatalf("execution %d = %s, want %s", i, out, want)
		}
	}
	el := time.Since(start)
	t.Logf("%d executions in %v: %.0f µs each over HTTP", n, el.Round(time.Millisecond), float64(el.Microseconds())/n)
	// A bad input fails its execution cleanly and the next one works.
	if _, _, err := c.Do(ctx, "POST", "/v1/compiled/"+compiled.ID+"/execute", []byte(`"no equals sign"`)); err == nil {
		t.Fatal("a malformed reading succeeded")
	}
	if out, _, err := c.Do(ctx, "POST", "/v1/compiled/"+compiled.ID+"/execute", []byte(`"x=100"`)); err != nil || string(out) != `"x: 100.0°C = 212.0°F"` {
		t.Fatalf("after a failure: %s %v", out, err)
	}
}
