package dag

import (
	"errors"
	"strings"
	"testing"
)

// step is a valid step for building test documents.
const okStep = `{"id": "a", "module": "math", "function": "add"}`

func TestParse_ReportsEachMistakeAtItsPath(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"empty", ``, `$: invalid JSON: unexpected end, want a value (line 1, column 1)`},
		{"not an object", `[1]`, `$: a workflow is a JSON object, got array`},
		{"syntax in a step", "{\"version\": 1,\n \"steps\": [{\"id\": x}]}", `$.steps[0].id: invalid JSON: unexpected 'x', want a value (line 2, column 19)`},
		{"trailing data", `{"version": 1, "steps": []} {}`, `$: invalid JSON: data after the JSON value (line 1, column 29)`},
		{"unterminated string", `{"name": "ab`, `$.name: invalid JSON: unterminated string (line 1, column 13)`},
		{"bad escape", `{"name": "a\qb"}`, `$.name: invalid JSON: bad escape \q in a string (line 1, column 12)`},
		{"control character", "{\"name\": \"a\tb\"}", `$.name: invalid JSON: control character in a string (escape it) (line 1, column 12)`},
		{"invalid UTF-8", "{\"name\": \"a\xffb\"}", `$.name: invalid JSON: invalid UTF-8 in a string (line 1, column 12)`},
		{"bad number", `{"version": 01}`, `$: invalid JSON: unexpected '1', want ',' or '}' in an object (line 1, column 14)`},
		{"bad fraction", `{"version": 1.}`, `$.version: invalid JSON: unexpected '}', want a digit (line 1, column 15)`},
		{"too deep", `{"version": 1, "steps": [{"args": ` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}]}`,
			`$.steps[0].args` + strings.Repeat("[0]", MaxDepth-3) + `: invalid JSON: nested deeper than 256 levels (line 1, column 288)`},
		{"too big", `{"name": "` + strings.Repeat("x", MaxWorkflowBytes) + `"}`, `$: workflow of 4194316 bytes, at most 4194304`},
		{"missing fields", `{}`, "$: missing field \"steps\"\n$: missing field \"version\" (this engine reads version 1)"},
		{"unknown field", `{"version": 1, "steps": [], "Steps": []}`, `$.Steps: unknown field "Steps" (a workflow has version, name, steps and output)`},
		{"duplicate key", `{"version": 1, "steps": [], "version": 2}`, `$.version: duplicate key "version"`},
		{"duplicate key in args", `{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "args": {"x": 1, "x": 2}}]}`, `$.steps[0].args.x: duplicate key "x"`},
		{"odd key in path", `{"version": 1, "steps": [], "a b": 1}`, `$["a b"]: unknown field "a b" (a workflow has version, name, steps and output)`},
		{"version not integer", `{"version": "1", "steps": []}`, `$.version: want an integer, got string`},
		{"version fraction", `{"version": 1.5, "steps": []}`, `$.version: want an integer, got 1.5`},
		{"version huge", `{"version": 99999999999999999999, "steps": []}`, `$.version: 99999999999999999999 is out of range`},
		{"name not string", `{"version": 1, "name": 3, "steps": []}`, `$.name: want a string, got number`},
		{"steps not array", `{"version": 1, "steps": {}}`, `$.steps: want an array of steps, got object`},
		{"step not object", `{"version": 1, "steps": [` + okStep + `, 7]}`, `$.steps[1]: want a step object, got number`},
		{"step fields", `{"version": 1, "steps": [{"id": 1, "retries": "2", "timeout_ms": 1e3, "retry_guest_errors": "yes", "when": true}]}`,
			strings.Join([]string{
				`$.steps[0]: missing field "function"`,
				`$.steps[0]: missing field "module"`,
				`$.steps[0].id: want a string, got number`,
				`$.steps[0].retries: want an integer, got string`,
				`$.steps[0].retry_guest_errors: want a boolean, got string`,
				`$.steps[0].timeout_ms: want an integer, got 1e3`,
				`$.steps[0].when: unknown field "when" (a step has id, module, function, args, map, pipeline, retries, retry_guest_errors, timeout_ms and resources)`,
			}, "\n")},
		{"retries out of int32", `{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "retries": 4294967296}]}`, `$.steps[0].retries: 4294967296 is out of range`},
		{"resources", `{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "resources": {"cpu": "1", "memory_bytes": 1.5, "gpu": 1e999, "custom": {"tpu": true}, "disk": 1}}]}`,
			strings.Join([]string{
				`$.steps[0].resources.cpu: want a number, got string`,
				`$.steps[0].resources.custom.tpu: want a number, got boolean`,
				`$.steps[0].resources.disk: unknown field "disk" (resources are cpu, memory_bytes, gpu and custom)`,
				`$.steps[0].resources.gpu: 1e999 is out of range`,
				`$.steps[0].resources.memory_bytes: want an integer, got 1.5`,
			}, "\n")},
		{"custom not object", `{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "resources": {"custom": []}}]}`, `$.steps[0].resources.custom: want an object of resource amounts, got array`},
		{"resources not object", `{"version": 1, "steps": [{"id": "a", "module": "m", "function": "f", "resources": 2}]}`, `$.steps[0].resources: want a resources object, got number`},
		{"sorted numerically", `{"version": 1, "steps": [` + strings.Repeat(okStep+",", 10) + `{}]}`,
			"$.steps[10]: missing field \"function\"\n$.steps[10]: missing field \"id\"\n$.steps[10]: missing field \"module\""},
		{"too many steps", `{"version": 1, "steps": [` + strings.Repeat("1,", MaxSteps) + `1]}`, `$.steps: 10001 steps, at most 10000`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := Parse([]byte(tt.src))
			if err == nil {
				t.Fatalf("Parse accepted it: %+v", w)
			}
			if w != nil {
				t.Errorf("Parse returned a workflow with its error")
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
			var pe *PathError
			if !errors.As(err, &pe) || !strings.HasPrefix(tt.want, pe.Path+": ") {
				t.Errorf("errors.As found %v", pe)
			}
		})
	}
}

func TestParse_NullOptionalFieldsAreMissing(t *testing.T) {
	w, err := Parse([]byte(`{"version": 1, "name": null, "output": null, "steps": [{"id": "a", "module": "m", "function": "f",
		"args": null, "map": null, "retries": null, "retry_guest_errors": null, "timeout_ms": null, "resources": {"custom": null}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	s := w.Steps[0]
	if w.Name != "" || w.Output != nil || s.Map != nil || s.Retries != nil || s.TimeoutMs != 0 || s.Resources.Custom != nil {
		t.Errorf("null fields were kept: %+v", w)
	}
	if string(s.Args) != "null" {
		t.Errorf("args = %q, want null", s.Args)
	}
}

// compileErr compiles steps (a JSON array's contents) with an optional output and returns the
// error text.
func compileErr(t *testing.T, src string) string {
	t.Helper()
	w, err := Parse([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	p, err := Compile(w, catalog)
	if err == nil {
		t.Fatalf("Compile accepted it:\n%s", p)
	}
	var list ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error is %T, want ErrorList", err)
	}
	return err.Error()
}

func TestCompile_ReportsEachMistakeAtItsPath(t *testing.T) {
	wf := func(steps ...string) string {
		return `{"version": 1, "steps": [` + strings.Join(steps, ",") + `]}`
	}
	tests := []struct {
		name, src, want string
	}{
		{"version", `{"version": 2, "steps": [` + okStep + `]}`, `$.version: unsupported version 2 (this engine reads version 1)`},
		{"name", `{"version": 1, "name": "a b", "steps": [` + okStep + `]}`, `$.name: name "a b" has character ' ' (allowed: letters, digits, _ - . : @ /)`},
		{"no steps", `{"version": 1, "steps": []}`, `$.steps: a workflow needs at least one step`},
		{"bad id", wf(`{"id": "1a", "module": "math", "function": "add"}`),
			`$.steps[0].id: invalid step id "1a": want a letter or '_', then letters, digits, '_' or '-', at most 64 bytes`},
		{"empty id", wf(`{"id": "", "module": "math", "function": "add"}`),
			`$.steps[0].id: invalid step id "": want a letter or '_', then letters, digits, '_' or '-', at most 64 bytes`},
		{"long id", wf(`{"id": "` + strings.Repeat("a", 65) + `", "module": "math", "function": "add"}`),
			`$.steps[0].id: invalid step id "` + strings.Repeat("a", 65) + `": want a letter or '_', then letters, digits, '_' or '-', at most 64 bytes`},
		{"reserved item", wf(`{"id": "item", "module": "math", "function": "add"}`), `$.steps[0].id: step id "item" is reserved: ${item} means the current element of a map`},
		{"reserved index", wf(`{"id": "index", "module": "math", "function": "add"}`), `$.steps[0].id: step id "index" is reserved: ${index} means the current element of a map`},
		{"duplicate id", wf(okStep, okStep), `$.steps[1].id: duplicate step id "a" (also at $.steps[0])`},
		{"module name", wf(`{"id": "a", "module": "", "function": "add"}`), `$.steps[0].module: empty name`},
		{"function name", wf(`{"id": "a", "module": "math", "function": "a*"}`), `$.steps[0].function: name "a*" has character '*' (allowed: letters, digits, _ - . : @ /)`},
		{"unknown module", wf(`{"id": "a", "module": "nope@1.0.0", "function": "add"}`), `$.steps[0].module: module "nope@1.0.0" is not registered: dag: unknown module`},
		{"unknown function", wf(`{"id": "a", "module": "math", "function": "sub"}`), `$.steps[0].function: module "math" has no function "sub": dag: unknown function`},
		{"actor", wf(`{"id": "a", "module": "counter", "function": "Counter"}`), `$.steps[0].function: function "Counter" of module "counter" is an actor; a step calls a task`},
		{"method", wf(`{"id": "a", "module": "counter", "function": "Counter.incr"}`), `$.steps[0].function: function "Counter.incr" of module "counter" is a method; a step calls a task`},
		{"retries", wf(`{"id": "a", "module": "math", "function": "add", "retries": 101}`), `$.steps[0].retries: retries 101 outside 0..100`},
		{"negative retries", wf(`{"id": "a", "module": "math", "function": "add", "retries": -1}`), `$.steps[0].retries: retries -1 outside 0..100`},
		{"timeout", wf(`{"id": "a", "module": "math", "function": "add", "timeout_ms": -5}`), `$.steps[0].timeout_ms: timeout_ms -5 is negative`},
		{"resources", wf(`{"id": "a", "module": "math", "function": "add", "resources": {"cpu": -1}}`), `$.steps[0].resources: resource "cpu": -1 is not a non-negative amount`},
		{"custom resource name", wf(`{"id": "a", "module": "math", "function": "add", "resources": {"custom": {"a b": 1}}}`),
			`$.steps[0].resources: custom resource: name "a b" has character ' ' (allowed: letters, digits, _ - . : @ /)`},
		{"unknown step", wf(`{"id": "a", "module": "math", "function": "add", "args": {"x": ["${b.y}"]}}`), `$.steps[0].args.x[0]: unknown step "b"`},
		{"unknown step in text", wf(`{"id": "a", "module": "math", "function": "add", "args": "n=${b}"}`), `$.steps[0].args: unknown step "b"`},
		{"unknown step in output", `{"version": 1, "steps": [` + okStep + `], "output": {"r": "${b}"}}`, `$.output.r: unknown step "b"`},
		{"empty ref", wf(`{"id": "a", "module": "math", "function": "add", "args": "${}"}`), `$.steps[0].args: bad reference "${}": empty reference`},
		{"space in ref", wf(`{"id": "a", "module": "math", "function": "add", "args": "${ a}"}`), `$.steps[0].args: bad reference "${ a}": a reference starts with a step name, not ' '`},
		{"bad selector", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": "${a..x}"}`), `$.steps[1].args: bad reference "${a..x}": a field name must follow '.' at offset 1`},
		{"bad index", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": "${a[x]}"}`), `$.steps[1].args: bad reference "${a[x]}": an index is digits between '[' and ']' (offset 1)`},
		{"negative index", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": "${a[-1]}"}`), `$.steps[1].args: bad reference "${a[-1]}": an index is digits between '[' and ']' (offset 1)`},
		{"leading zero", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": "${a[01]}"}`), `$.steps[1].args: bad reference "${a[01]}": index 01 has a leading zero`},
		{"huge index", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": "${a[99999999999]}"}`), `$.steps[1].args: bad reference "${a[99999999999]}": index 99999999999 is too large`},
		{"junk after ref", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": "${a x}"}`), `$.steps[1].args: bad reference "${a x}": unexpected ' ' at offset 1 (want '.' or '[')`},
		{"unterminated", wf(okStep, `{"id": "b", "module": "math", "function": "add", "args": {"s": "cost: ${a"}}`), `$.steps[1].args.s: unterminated "${" (write "$${" for a literal "${")`},
		{"item outside map", wf(`{"id": "a", "module": "math", "function": "add", "args": "${item.x}"}`), `$.steps[0].args: ${item.x} is only defined in the args of a step with map`},
		{"index outside map", wf(`{"id": "a", "module": "math", "function": "add", "args": "#${index}"}`), `$.steps[0].args: ${index} is only defined in the args of a step with map`},
		{"item in map", wf(`{"id": "a", "module": "math", "function": "add", "map": ["${item}"]}`), `$.steps[0].map[0]: ${item} cannot be used in map: the elements are not known yet`},
		{"item in output", `{"version": 1, "steps": [` + okStep + `], "output": "${item}"}`, `$.output: ${item} is only defined in the args of a step with map`},
		{"index field", wf(`{"id": "a", "module": "math", "function": "add", "map": [1], "args": "${index.x}"}`), `$.steps[0].args: ${index} is a number; .x cannot select from it`},
		{"map object", wf(`{"id": "a", "module": "math", "function": "add", "map": {"x": 1}}`), `$.steps[0].map: map must be an array or a "${ref}" naming one, got object`},
		{"map literal string", wf(`{"id": "a", "module": "math", "function": "add", "map": "abc"}`), `$.steps[0].map: map must be an array or a "${ref}" naming one, got string`},
		{"map text", wf(okStep, `{"id": "b", "module": "math", "function": "add", "map": "x${a}"}`), `$.steps[1].map: map must be an array or exactly "${ref}", not text with a reference in it`},
		{"map over bytes", wf(`{"id": "a", "module": "blob", "function": "fetch"}`, `{"id": "b", "module": "math", "function": "add", "map": "${a}"}`), `$.steps[1].map: map needs an array; step "a" outputs bytes`},
		{"select in bytes", wf(`{"id": "a", "module": "blob", "function": "fetch"}`, `{"id": "b", "module": "math", "function": "add", "args": "${a.x}"}`), `$.steps[1].args: step "a" outputs bytes; ${a.x} cannot select inside them`},
		{"field of map output", wf(`{"id": "a", "module": "math", "function": "add", "map": [1, 2]}`, `{"id": "b", "module": "math", "function": "add", "args": "${a.total}"}`),
			`$.steps[1].args: step "a" has map, so its output is an array; .total cannot select from it`},
		{"bytes input object", wf(`{"id": "a", "module": "blob", "function": "resize", "args": {"w": 10}}`), `$.steps[0].args: function "resize" of module "blob" takes bytes: args must be a string or a "${ref}", got object`},
		{"bytes input null", wf(`{"id": "a", "module": "blob", "function": "hash", "args": null}`), `$.steps[0].args: function "hash" of module "blob" takes bytes: args must be a string or a "${ref}", got null`},
		{"bytes input index", wf(`{"id": "a", "module": "blob", "function": "hash", "map": [1], "args": "${index}"}`), `$.steps[0].args: function "hash" of module "blob" takes bytes: ${index} is a number, not a string`},
		{"map output in text", wf(`{"id": "a", "module": "math", "function": "add", "map": [1]}`, `{"id": "b", "module": "math", "function": "add", "args": "all: ${a}"}`),
			`$.steps[1].args: step "a" has map, so its output is an array; it cannot be placed inside text`},
		{"map output as bytes", wf(`{"id": "a", "module": "math", "function": "add", "map": [1]}`, `{"id": "b", "module": "blob", "function": "hash", "args": "${a}"}`),
			`$.steps[1].args: function "hash" of module "blob" takes bytes: step "a" has map, so its output is an array, not a string`},
		{"self cycle", wf(`{"id": "a", "module": "math", "function": "add", "args": "${a}"}`), `$.steps[0].args: cycle: a -> a`},
		{"shortest cycle", wf(
			`{"id": "c", "module": "math", "function": "add", "args": {"x": "${a}"}}`,
			`{"id": "b", "module": "math", "function": "add", "map": "${c}"}`,
			`{"id": "a", "module": "math", "function": "add", "args": {"y": 1, "z": "${b[0]}", "w": "${c}"}}`,
			`{"id": "d", "module": "math", "function": "add", "args": "${a}"}`),
			"$.steps[2].args.w: cycle: a -> c -> a"},
		{"long cycle", wf(
			`{"id": "c", "module": "math", "function": "add", "args": {"x": "${a}"}}`,
			`{"id": "b", "module": "math", "function": "add", "map": "${c}"}`,
			`{"id": "a", "module": "math", "function": "add", "args": {"y": 1, "z": "${b[0]}", "w": "x${b[1]}"}}`),
			"$.steps[2].args.w: cycle: a -> b -> c -> a"},
		{"two cycles", wf(
			`{"id": "a", "module": "math", "function": "add", "args": "${b}"}`,
			`{"id": "b", "module": "math", "function": "add", "args": "${a}"}`,
			`{"id": "x", "module": "math", "function": "add", "args": ["${y}", "${b}"]}`,
			`{"id": "y", "module": "math", "function": "add", "args": "${x}"}`),
			"$.steps[0].args: cycle: a -> b -> a\n$.steps[2].args[0]: cycle: x -> y -> x"},
		{"every mistake at once", `{"version": 3, "steps": [
			{"id": "a", "module": "nope", "function": "add", "args": "${b}"},
			{"id": "a", "module": "math", "function": "sub", "retries": 200},
			{"id": "c", "module": "math", "function": "add", "args": "${item}", "timeout_ms": -1}
		], "output": "${zz}"}`, strings.Join([]string{
			`$.output: unknown step "zz"`,
			`$.steps[0].args: unknown step "b"`,
			`$.steps[0].module: module "nope" is not registered: dag: unknown module`,
			`$.steps[1].function: module "math" has no function "sub": dag: unknown function`,
			`$.steps[1].id: duplicate step id "a" (also at $.steps[0])`,
			`$.steps[1].retries: retries 200 outside 0..100`,
			`$.steps[2].args: ${item} is only defined in the args of a step with map`,
			`$.steps[2].timeout_ms: timeout_ms -1 is negative`,
			`$.version: unsupported version 3 (this engine reads version 1)`,
		}, "\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := compileErr(t, tt.src); got != tt.want {
				t.Errorf("error:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestCompile_ProgrammaticWorkflowsAreChecked(t *testing.T) {
	r := 101
	w := &Workflow{Version: 1, Steps: []StepSpec{
		{ID: "a", Module: "math", Function: "add", Args: []byte(`{"x": `), Retries: &r},
		{ID: "b", Module: "math", Function: "add", Map: []byte(`[1,2] x`)},
	}, Output: []byte(`{`)}
	_, err := Compile(w, catalog)
	want := strings.Join([]string{
		`$.output: invalid JSON: unexpected end, want a string key (line 1, column 2)`,
		`$.steps[0].args.x: invalid JSON: unexpected end, want a value (line 1, column 7)`,
		`$.steps[0].retries: retries 101 outside 0..100`,
		`$.steps[1].map: invalid JSON: data after the JSON value (line 1, column 7)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	if _, err := Compile(nil, catalog); err == nil {
		t.Error("Compile(nil) succeeded")
	}
	many := &Workflow{Version: 1, Steps: make([]StepSpec, MaxSteps+1)}
	if _, err := Compile(many, nil); err == nil || err.Error() != "$.steps: 10001 steps, at most 10000" {
		t.Errorf("too many steps: %v", err)
	}
}

func TestCompile_NilCatalogTakesJSONTasks(t *testing.T) {
	w, err := Parse([]byte(`{"version": 1, "steps": [{"id": "a", "module": "anything", "function": "Whatever.x", "args": {"v": 1}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := p.Steps[0]; s.Input != "json" || s.Output != "json" {
		t.Errorf("encodings %s %s", s.Input, s.Output)
	}
}

func TestComparePaths_OrdersIndicesNumerically(t *testing.T) {
	in := []string{"$.steps[10].id", "$.steps[2].id", "$.output", "$.steps[2]", "$.steps[2].args.b", "$.steps[2].args[1]", "$", "$.version", "$.steps[2].argsx"}
	want := []string{"$", "$.output", "$.steps[2]", "$.steps[2].args.b", "$.steps[2].args[1]", "$.steps[2].argsx", "$.steps[2].id", "$.steps[10].id", "$.version"}
	var l ErrorList
	for _, p := range in {
		l.add(p, "m")
	}
	l.sorted()
	for i, e := range l {
		if e.Path != want[i] {
			t.Fatalf("order %d: got %s, want %s", i, e.Path, want[i])
		}
	}
}
