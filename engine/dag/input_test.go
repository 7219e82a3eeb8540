package dag

import (
	"strings"
	"testing"
)

// ${input} reads the workflow's input anywhere a template may stand: args, map and output; it adds
// no dependency, and a workflow given no input sees null.
func TestTemplate_InputIsTheWorkflowsInput(t *testing.T) {
	p := mustCompile(t, `{"version": 1, "name": "in", "steps": [
		{"id": "a", "module": "math", "function": "add", "args": {"x": "${input.x}", "all": "${input}"}},
		{"id": "m", "module": "math", "function": "add", "map": "${input.list}", "args": "${item}"}],
		"output": "n=${input.x}"}`)
	if deps := p.Step("a").Deps; len(deps) != 0 {
		t.Fatalf("deps of a: %v", deps)
	}
	outputs := map[string][]byte{InputRef: []byte(`{"x": 7, "list": [1, 2]}`)}
	got, err := p.Step("a").Args.Render(outputs, nil, 0)
	if err != nil || string(got) != `{"x":7,"all":{"x": 7, "list": [1, 2]}}` {
		t.Fatalf("args = %s, %v", got, err)
	}
	if items, err := p.Step("m").Map.Render(outputs, nil, 0); err != nil || string(items) != "[1, 2]" {
		t.Fatalf("map = %s, %v", items, err)
	}
	if out, err := p.Output.Render(outputs, nil, 0); err != nil || string(out) != `"n=7"` {
		t.Fatalf("output = %s, %v", out, err)
	}
	if got, err := p.Step("a").Args.Render(map[string][]byte{}, nil, 0); err == nil || !strings.Contains(err.Error(), "input") {
		t.Fatalf("no input, a field of it: %s, %v", got, err)
	}
	none := mustCompile(t, `{"version": 1, "name": "in", "steps": [{"id": "a", "module": "math", "function": "add", "args": "${input}"}]}`)
	if got, err := none.Step("a").Args.Render(map[string][]byte{}, nil, 0); err != nil || string(got) != "null" {
		t.Fatalf("no input = %s, %v", got, err)
	}
}

func TestCompile_InputIsAReservedID(t *testing.T) {
	w, err := Parse([]byte(`{"version": 1, "name": "in", "steps": [{"id": "input", "module": "math", "function": "add"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(w, catalog)
	if err == nil || !strings.Contains(err.Error(), `$.steps[0].id: step id "input" is reserved`) {
		t.Fatalf("err = %v", err)
	}
}
