package engine_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lumenflow/lumen/engine"
	"github.com/lumenflow/lumen/engine/serving"
)

// Training as a workflow: a step names the built-in function lumen:model.train; the model lands
// under the data root with its evaluation, the step's output is the report, and paths outside
// the root, unknown built-ins and compiled workflows with built-ins are refused.
func TestWorkflow_TrainsTheModelAsAStep(t *testing.T) {
	root := t.TempDir()
	e, _ := open(t, engine.Config{DataRoot: root})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	doc := []byte(`{"version": 1, "name": "train", "steps": [
	  {"id": "train", "module": "lumen:model", "function": "train",
	   "args": {"out": "models/tiny", "size": "tiny", "steps": 4, "batch": 8, "tasks": ["text"]}}],
	  "output": "${train}"}`)
	id, err := e.SubmitWorkflow(ctx, doc, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.Workflows().Result(ctx, id)
	if err != nil {
		t.Fatalf("workflow: %v", err)
	}
	var rep serving.TrainReport
	if err := json.Unmarshal(out, &rep); err != nil || rep.Steps != 4 || rep.Out != "models/tiny" || rep.Params == 0 || len(rep.Accuracy) == 0 {
		t.Fatalf("report %s (%v)", out, err)
	}
	for _, f := range []string{"model.safetensors", "config.json", "tokenizer.json", "eval.json"} {
		if _, err := os.Stat(filepath.Join(root, "models/tiny", f)); err != nil {
			t.Errorf("model dir lacks %s: %v", f, err)
		}
	}

	for name, bad := range map[string]string{
		"outside the root": `{"version": 1, "steps": [{"id": "t", "module": "lumen:model", "function": "train", "args": {"out": "../x"}}]}`,
		"unknown field":    `{"version": 1, "steps": [{"id": "t", "module": "lumen:model", "function": "train", "args": {"out": "m", "layers": 9}}]}`,
	} {
		id, err := e.SubmitWorkflow(ctx, []byte(bad), "", nil)
		if err != nil {
			t.Fatalf("%s: submit: %v", name, err)
		}
		if _, err := e.Workflows().Result(ctx, id); err == nil {
			t.Errorf("%s: the workflow succeeded", name)
		}
	}
	if _, err := e.SubmitWorkflow(ctx, []byte(`{"version": 1, "steps": [{"id": "t", "module": "lumen:model", "function": "fly"}]}`), "", nil); err == nil || !strings.Contains(err.Error(), "fly") {
		t.Errorf("unknown built-in: %v", err)
	}
	if _, err := e.CompileWorkflow(ctx, doc, "", nil); err == nil {
		t.Error("a compiled workflow accepted a built-in step")
	}
}
