package dag

import (
	"strings"
	"testing"
)

func TestParse_PipelineStepShape(t *testing.T) {
	cases := []struct{ doc, want string }{
		{`{"version": 1, "steps": [{"id": "p", "pipeline": 3}]}`, `$.steps[0].pipeline: want a pipeline object or array of steps, got number`},
		{`{"version": 1, "steps": [{"id": "p", "pipeline": []}]}`, `$.steps[0].pipeline: an empty pipeline`},
		{`{"version": 1, "steps": [{"id": "p", "pipeline": [{"count": {}}], "module": "m"}]}`, `$.steps[0].module: a pipeline step has no module`},
		{`{"version": 1, "steps": [{"id": "p", "pipeline": [{"count": {}}], "function": "f"}]}`, `$.steps[0].function: a pipeline step has no function`},
		{`{"version": 1, "steps": [{"id": "p", "pipeline": [{"count": {}}], "args": 1}]}`, `$.steps[0].args: a pipeline step has no args`},
		{`{"version": 1, "steps": [{"id": "p", "pipeline": [{"count": {}}], "map": [1]}]}`, `$.steps[0].map: a pipeline step has no map`},
		{`{"version": 1, "steps": [{"pipeline": [{"count": {}}]}]}`, `$.steps[0]: missing field "id"`},
		{`{"version": 1, "steps": [{"id": "p", "pipeline": [{"count": {}}], "pipeline": [1]}]}`, `duplicate`},
	}
	for _, c := range cases {
		_, err := Parse([]byte(c.doc))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s:\n got %v\nwant %s", c.doc, err, c.want)
		}
	}
}

func TestCompile_PipelineStepReferencesAndChecks(t *testing.T) {
	w, err := Parse([]byte(`{"version": 1, "steps": [
		{"id": "n", "module": "math", "function": "add"},
		{"id": "p", "pipeline": [{"from_items": [{"a": "${n}"}]}, {"take": "${item}"}], "retries": 101},
		{"id": "q", "pipeline": {"steps": [{"read_csv": "${nope}"}]}}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(w, catalog)
	for _, want := range []string{
		`$.steps[1].pipeline[1].take: ${item} is only defined in the args of a step with map`,
		`$.steps[1].retries: retries 101 outside 0..100`,
		`$.steps[2].pipeline.steps[0].read_csv: unknown step "nope"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v\nwant %s", err, want)
		}
	}
	// A pipeline step's input is its rendered pipeline, its output JSON another step can select in.
	w, _ = Parse([]byte(`{"version": 1, "steps": [
		{"id": "n", "module": "math", "function": "add"},
		{"id": "p", "pipeline": [{"from_items": [{"a": 1}]}, {"limit": "${n}"}]},
		{"id": "r", "module": "math", "function": "add", "args": "${p.count}"}
	]}`))
	plan, err := Compile(w, catalog)
	if err != nil {
		t.Fatal(err)
	}
	p := plan.Steps[1]
	if !p.Pipeline || p.ID != "p" || p.Module != "" || len(p.Deps) != 1 {
		t.Fatalf("step %+v", p)
	}
	in, err := p.RenderInput(map[string][]byte{"n": []byte("2")}, nil, 0)
	if err != nil || string(in) != `[{"from_items":[{"a":1}]},{"limit":2}]` {
		t.Fatalf("rendered %s, %v", in, err)
	}
	if plan.Steps[2].Deps[0] != "p" {
		t.Fatalf("r deps %v", plan.Steps[2].Deps)
	}
}
