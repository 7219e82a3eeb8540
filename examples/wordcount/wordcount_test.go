package wordcount_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/lumenflow/lumen/internal/guestbuild"
	"github.com/lumenflow/lumen/internal/lumentest"
)

// The example's workflow on a real `lumen up`: split the shipped text, count each chunk in
// parallel, reduce to the five most frequent words.
func TestWordcount_EndToEnd(t *testing.T) {
	wasm, err := os.ReadFile(guestbuild.Go(t, "guest"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("workflow.json")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile("text.txt")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Steps []struct{ Args json.RawMessage }
	}
	var split struct{ Text string }
	if err := json.Unmarshal(doc, &wf); err != nil || json.Unmarshal(wf.Steps[0].Args, &split) != nil || split.Text+"\n" != string(text) {
		t.Fatalf("workflow.json does not carry text.txt (%v)", err)
	}
	node := lumentest.Start(t, "")
	node.Push(wasm, "wordcount", "1.0.0")
	c, ctx := node.Client(), context.Background()
	st, err := c.SubmitWorkflow(ctx, doc, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, done, err := c.WorkflowResult(ctx, st.ID, time.Minute)
	if err != nil || !done {
		t.Fatalf("result: %s %v %v", out, done, err)
	}
	var top []struct {
		Word  string
		Count int
	}
	if err := json.Unmarshal(out, &top); err != nil {
		t.Fatalf("%s: %v", out, err)
	}
	want := []struct {
		Word  string
		Count int
	}{{"the", 18}, {"of", 16}, {"was", 12}, {"it", 11}, {"a", 8}} // counted independently in text.txt
	if len(top) != len(want) {
		t.Fatalf("top = %s", out)
	}
	for i := range want {
		if top[i] != want[i] {
			t.Fatalf("top[%d] = %+v, want %+v (all: %s)", i, top[i], want[i], out)
		}
	}
	fin, err := c.Workflow(ctx, st.ID)
	if err != nil || fin.State != "succeeded" || fin.Steps[0].Runs != 1 {
		t.Fatalf("status %+v %v", fin, err)
	}
}
