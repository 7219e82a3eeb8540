package polyglot_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// guests are the workflow's four modules, one per language, in the order their steps run. Each
// is built from source here; a missing toolchain fails the build with `make toolchain` named.
var guests = []struct {
	lang  string // also the guest's folder and its module's name, poly-<lang>@1.0.0
	build func(testing.TB, string) string
}{
	{"go", guestbuild.Go},
	{"rust", guestbuild.Rust},
	{"c", guestbuild.C},
	{"assemblyscript", guestbuild.AssemblyScript},
}

// wasm builds every guest and returns their modules by language.
func wasm(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, g := range guests {
		start := time.Now()
		b, err := os.ReadFile(g.build(t, g.lang))
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-14s %7d bytes, built in %v", g.lang, len(b), time.Since(start).Round(time.Millisecond))
		out[g.lang] = b
	}
	return out
}

// want is the workflow's output, worked out by hand from the text in workflow.json: four
// non-blank lines of 9, 8, 8 and 11 words; 43 + 39 + 41 + 60 bytes once normalised ("the quick
// brown fox jumps over the lazy dog", "pack my box with five dozen liquor jugs", "crème brûlée s
// il vous plaît 2 spoons" with è, û and î two bytes each, "write once one module four languages
// zero copies of the data"); the last line has the most words and comes back as written,
// escaped as Go's encoding/json escapes; the checksum folds the lines' FNV-1a hashes (ef6a2ef0,
// 2296b936, b71eb171, ec6a1fbf) in order.
const want = `{"lines":4,"words":36,"bytes":183,` +
	`"longest":"\"Write once\": one module, four languages \u0026 \u003czero\u003e copies of the data?",` +
	`"checksum":"a10133b3"}`

// The example's workflow on a real `lumen up`: a Go step splits the text into lines, a Rust step
// normalises each line, a C step measures each, an AssemblyScript step sums up; the output is
// checked byte for byte.
func TestPolyglot_FourLanguagesOneWorkflow(t *testing.T) {
	mods := wasm(t)
	doc, err := os.ReadFile("workflow.json")
	if err != nil {
		t.Fatal(err)
	}
	node := lumentest.Start(t, "")
	for _, g := range guests {
		node.Push(mods[g.lang], "poly-"+g.lang, "1.0.0")
	}
	c, ctx := node.Client(), context.Background()
	st, err := c.SubmitWorkflow(ctx, doc, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, done, err := c.WorkflowResult(ctx, st.ID, 2*time.Minute)
	if err != nil || !done {
		t.Fatalf("result: %s %v %v\n%s", out, done, err, node.Output())
	}
	if string(out) != want {
		t.Fatalf("output\n %s\nwant\n %s", out, want)
	}
	fin, err := c.Workflow(ctx, st.ID)
	if err != nil || fin.State != "succeeded" {
		t.Fatalf("status %+v %v", fin, err)
	}
	items := map[string]int{"lines": 0, "normalise": 4, "measure": 4, "summary": 0}
	for _, s := range fin.Steps {
		n, ok := items[s.ID]
		if !ok || s.State != "done" || s.Items != n {
			t.Errorf("step %s: %s, %d items; want done with %d", s.ID, s.State, s.Items, n)
		}
		delete(items, s.ID)
	}
	if len(items) > 0 {
		t.Errorf("steps missing from the status: %v", items)
	}

	// Each module's no-op echo, which BenchmarkSDK calls, returns its input.
	for _, g := range guests {
		res, err := c.Call(ctx, "poly-"+g.lang+"@1.0.0", "echo", []byte("ping ✓"))
		if err != nil || res.OutputText != "ping ✓" {
			t.Errorf("%s echo: %+v %v", g.lang, res, err)
		}
	}
}

// A guest that fails reaches the workflow's status as that guest's error: the AssemblyScript
// step refuses measures out of order, with its own code.
func TestPolyglot_GuestErrorSurfaces(t *testing.T) {
	mods := wasm(t)
	node := lumentest.Start(t, "")
	node.Push(mods["assemblyscript"], "poly-assemblyscript", "1.0.0")
	c, ctx := node.Client(), context.Background()
	doc := `{"version": 1, "name": "bad-order", "steps": [{"id": "summary", "module": "poly-assemblyscript@1.0.0",
		"function": "summary", "args": {"lines": ["a"], "stats": [{"index": 7, "words": 1, "bytes": 1, "fnv1a": 0}]}}]}`
	st, err := c.SubmitWorkflow(ctx, []byte(doc), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.WorkflowResult(ctx, st.ID, time.Minute); err == nil {
		t.Fatal("the workflow succeeded")
	}
	fin, err := c.Workflow(ctx, st.ID)
	if err != nil || fin.State != "failed" || fin.Error == nil || fin.Error.Kind != "guest_error" || fin.Error.Code != "E_ORDER" ||
		!strings.Contains(fin.Error.Message, `step "summary": stats[0] is not the measure of line 0`) {
		t.Fatalf("status %+v (error %+v) %v", fin, fin.Error, err)
	}
}
