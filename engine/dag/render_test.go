package dag

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// renderPlan has a step of each kind for the render tests. Its outputs are given per test.
const renderPlan = `{"version": 1, "name": "render", "steps": [
	{"id": "j", "module": "math", "function": "add"},
	{"id": "b", "module": "blob", "function": "fetch"},
	{"id": "m", "module": "math", "function": "add", "map": [1, 2]},
	{"id": "t", "module": "math", "function": "add", "map": "${j.list}", "args": ARGS}
]}`

func renderT(t *testing.T, args string) *Template {
	t.Helper()
	p := mustCompile(t, strings.Replace(renderPlan, "ARGS", args, 1))
	return p.Step("t").Args
}

func TestTemplate_Render(t *testing.T) {
	outputs := map[string][]byte{
		"j": []byte(` {"list": [1, "two", {"three": 3}], "s": "a\"b\u00e9", "n": -1.5e3, "t": true, "z": null,
			"a\u0062": "escaped key", "d": 1, "d": 2, "deep": {"x": [[0, {"y": "found"}]]}} `),
		"b": []byte("raw \"bytes\"\n"),
		"m": []byte(`[10, 20]`),
	}
	tests := []struct {
		name, args, item string
		index            int
		want             string
	}{
		{"literal", `{"a": [1, "x", null, true], "b": {}}`, `0`, 0, `{"a":[1,"x",null,true],"b":{}}`},
		{"whole output", `"${j}"`, `0`, 0, `{"list": [1, "two", {"three": 3}], "s": "a\"b\u00e9", "n": -1.5e3, "t": true, "z": null,
			"a\u0062": "escaped key", "d": 1, "d": 2, "deep": {"x": [[0, {"y": "found"}]]}}`},
		{"field", `{"v": "${j.list}"}`, `0`, 0, `{"v":[1, "two", {"three": 3}]}`},
		{"index", `["${j.list[1]}", "${j.list[2].three}"]`, `0`, 0, `["two",3]`},
		{"deep", `"${j.deep.x[0][1].y}"`, `0`, 0, `"found"`},
		{"escaped key", `"${j.ab}"`, `0`, 0, `"escaped key"`},
		{"first of duplicate keys", `"${j.d}"`, `0`, 0, `1`},
		{"scalars", `["${j.n}", "${j.t}", "${j.z}"]`, `0`, 0, `[-1.5e3,true,null]`},
		{"text with string", `"<${j.s}>"`, `0`, 0, `"<a\"b\u00e9>"`},
		{"text with number", `{"k": "n=${j.n}, i=${index}"}`, `0`, 7, `{"k":"n=-1.5e3, i=7"}`},
		{"escaped dollar", `"$${j} costs $5 ${j.list[0]}$"`, `0`, 0, `"${j} costs $5 1$"`},
		{"escaped only", `"$${x}"`, `0`, 0, `"${x}"`},
		{"bytes output", `{"raw": "${b}"}`, `0`, 0, `{"raw":"raw \"bytes\"\n"}`},
		{"bytes in text", `"<${b}>"`, `0`, 0, `"<raw \"bytes\"\n>"`},
		{"map output", `["${m}", "${m[1]}"]`, `0`, 0, `[[10, 20],20]`},
		{"item", `{"it": "${item}", "f": "${item.k[1]}", "i": "${index}"}`, ` {"k": [0, "x"]} `, 3, `{"it":{"k": [0, "x"]},"f":"x","i":3}`},
		{"control characters from text", `"a\tb ${j.s}"`, `0`, 0, `"a\tb a\"b\u00e9"`},
		{"unicode keys", `{"é": "${j.t}"}`, `0`, 0, `{"é":true}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := renderT(t, tt.args)
			got, err := tpl.Render(outputs, json.RawMessage(tt.item), tt.index)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("not valid JSON: %s", got)
			}
		})
	}
}

func TestTemplate_RenderWithoutReferencesReturnsThePrecomputedBytes(t *testing.T) {
	tpl := renderT(t, `{"a": [1, 2, 3]}`)
	a, _ := tpl.Render(nil, nil, 0)
	b, _ := tpl.Render(nil, nil, 0)
	if &a[0] != &b[0] || string(a) != `{"a":[1,2,3]}` {
		t.Errorf("renders %s at %p and %p", a, &a[0], &b[0])
	}
	if n := testing.AllocsPerRun(100, func() { tpl.Render(nil, nil, 0) }); n != 0 {
		t.Errorf("%v allocations", n)
	}
}

func TestTemplate_RenderErrors(t *testing.T) {
	good := map[string][]byte{
		"j": []byte(`{"list": [1, "two"], "o": {"k": 1}, "s": "x", "n": 3}`),
		"b": []byte("\xff\xfe"),
		"m": []byte(`[1]`),
	}
	tests := []struct {
		name, args string
		outputs    map[string][]byte
		item       string
		want       string
	}{
		{"not finished", `{"x": "${j.list}"}`, map[string][]byte{}, `0`, `step "t": $.steps[3].args.x: ${j.list}: step "j" has no output yet`},
		{"missing field", `"${j.o.nope}"`, good, `0`, `step "t": $.steps[3].args: ${j.o.nope}: j.o has no field "nope"`},
		{"field of array", `"${j.list.x}"`, good, `0`, `step "t": $.steps[3].args: ${j.list.x}: j.list is an array; it has no field "x"`},
		{"index of object", `"${j.o[0]}"`, good, `0`, `step "t": $.steps[3].args: ${j.o[0]}: j.o is an object; it cannot be indexed with [0]`},
		{"out of range", `"${j.list[2]}"`, good, `0`, `step "t": $.steps[3].args: ${j.list[2]}: j.list has length 2; [2] is out of range`},
		{"empty array", `"${j.list[0]}"`, map[string][]byte{"j": []byte(`{"list": []}`)}, `0`, `step "t": $.steps[3].args: ${j.list[0]}: j.list has length 0; [0] is out of range`},
		{"object in text", `"x${j.o}"`, good, `0`, `step "t": $.steps[3].args: ${j.o}: is an object; only strings and numbers can be placed inside text`},
		{"invalid JSON", `"${j}"`, map[string][]byte{"j": []byte(`{"a": 1`)}, `0`, `step "t": $.steps[3].args: ${j}: the output of step "j" is not valid JSON: unexpected end, want ',' or '}' at byte 7`},
		{"trailing data", `"${j}"`, map[string][]byte{"j": []byte(`1 2`)}, `0`, `step "t": $.steps[3].args: ${j}: the output of step "j" is not valid JSON: data after the JSON value at byte 2`},
		{"invalid UTF-8 in JSON", `"${j.s}"`, map[string][]byte{"j": []byte("{\"s\": \"\xff\"}")}, `0`, `step "t": $.steps[3].args: ${j.s}: the output of step "j" is not valid JSON: invalid UTF-8 in a string at byte 7`},
		{"empty output", `"${j}"`, map[string][]byte{"j": nil}, `0`, `step "t": $.steps[3].args: ${j}: the output of step "j" is not valid JSON: unexpected end, want a value at byte 0`},
		{"bytes not UTF-8", `{"b": "${b}"}`, good, `0`, `step "t": $.steps[3].args.b: ${b}: the output of step "b" is bytes that are not valid UTF-8, so it cannot be placed in JSON`},
		{"bad item", `"${item.k}"`, good, `[1`, `step "t": $.steps[3].args: ${item.k}: the element is not valid JSON: unexpected end, want ',' or ']' at byte 2`},
		{"no item", `"${item}"`, good, ``, `step "t": $.steps[3].args: ${item}: no current element: the template is not being rendered for an element of a map`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tpl := renderT(t, tt.args)
			var item json.RawMessage
			if tt.item != "" {
				item = json.RawMessage(tt.item)
			}
			got, err := tpl.Render(tt.outputs, item, 0)
			if err == nil {
				t.Fatalf("rendered %s", got)
			}
			var re *RenderError
			if !errors.As(err, &re) || re.Step != "t" {
				t.Errorf("error %T %+v", err, re)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

func TestStep_RenderInputOfBytesFunctions(t *testing.T) {
	p := mustCompile(t, `{"version": 1, "steps": [
		{"id": "j", "module": "math", "function": "add"},
		{"id": "b", "module": "blob", "function": "fetch"},
		{"id": "none", "module": "blob", "function": "hash"},
		{"id": "lit", "module": "blob", "function": "hash", "args": "caf\u00e9\n"},
		{"id": "raw", "module": "blob", "function": "resize", "args": "${b}"},
		{"id": "str", "module": "blob", "function": "hash", "args": "${j.s}"},
		{"id": "text", "module": "blob", "function": "hash", "args": "id=${j.n} ${b}"},
		{"id": "obj", "module": "blob", "function": "hash", "args": "${j.o}"},
		{"id": "each", "module": "blob", "function": "hash", "map": "${j.list}", "args": "${item}"}
	]}`)
	outputs := map[string][]byte{"j": []byte(`{"s": "a\u0000b", "n": 7, "o": {}, "list": ["x", 2]}`), "b": []byte("\x00\xffbin")}
	tests := []struct {
		step, item, want, err string
	}{
		{step: "none", want: ""},
		{step: "lit", want: "café\n"},
		{step: "raw", want: "\x00\xffbin"},
		{step: "str", want: "a\x00b"},
		{step: "obj", err: `step "obj": $.steps[7].args: ${j.o}: function "hash" takes bytes: args must be a string, got object`},
		{step: "text", err: `step "text": $.steps[6].args: ${b}: the output of step "b" is bytes that are not valid UTF-8, so it cannot be placed in JSON`},
		{step: "each", item: `"x"`, want: "x"},
		{step: "each", item: `2`, err: `step "each": $.steps[8].args: ${item}: function "hash" takes bytes: args must be a string, got number`},
	}
	for _, tt := range tests {
		s := p.Step(tt.step)
		var item json.RawMessage
		if tt.item != "" {
			item = json.RawMessage(tt.item)
		}
		got, err := s.RenderInput(outputs, item, 0)
		switch {
		case tt.err != "" && (err == nil || err.Error() != tt.err):
			t.Errorf("%s(%s): error\n got %v\nwant %s", tt.step, tt.item, err, tt.err)
		case tt.err == "" && err != nil:
			t.Errorf("%s(%s): %v", tt.step, tt.item, err)
		case tt.err == "" && (string(got) != tt.want || got == nil):
			t.Errorf("%s(%s) = %q, want %q", tt.step, tt.item, got, tt.want)
		}
	}
	if s := p.Step("text"); true {
		got, err := s.RenderInput(map[string][]byte{"j": outputs["j"], "b": []byte("ok")}, nil, 0)
		if err != nil || string(got) != "id=7 ok" {
			t.Errorf("text = %q, %v", got, err)
		}
	}
	if _, err := p.Step("raw").RenderInput(map[string][]byte{}, nil, 0); err == nil || err.Error() != `step "raw": $.steps[4].args: ${b}: step "b" has no output yet` {
		t.Errorf("raw without output: %v", err)
	}
}

func TestStep_ItemsAndJoin(t *testing.T) {
	p := mustCompile(t, `{"version": 1, "steps": [
		{"id": "j", "module": "math", "function": "add"},
		{"id": "lit", "module": "math", "function": "add", "map": [1, {"a": "${j.x}"}, "s"], "args": "${item}"},
		{"id": "ref", "module": "math", "function": "add", "map": "${j.list}"},
		{"id": "bytes", "module": "blob", "function": "fetch", "map": []}
	]}`)
	outputs := map[string][]byte{"j": []byte(`{"x": [true], "list": [ 1 , [2,3] , "4" ]}`)}
	check := func(step string, want ...string) {
		t.Helper()
		items, err := p.Step(step).Items(outputs)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if items == nil || len(items) != len(want) {
			t.Fatalf("%s: items %q, want %q", step, items, want)
		}
		for i := range want {
			if string(items[i]) != want[i] {
				t.Errorf("%s: item %d = %s, want %s", step, i, items[i], want[i])
			}
		}
	}
	check("lit", `1`, `{"a":[true]}`, `"s"`)
	check("ref", `1`, `[2,3]`, `"4"`)
	check("bytes")
	if items, err := p.Step("j").Items(outputs); items != nil || err != nil {
		t.Errorf("Items of a step without map: %v, %v", items, err)
	}
	outputs["j"] = []byte(`{"list": {"a": 1}}`)
	if _, err := p.Step("ref").Items(outputs); err == nil || err.Error() != `step "ref": $.steps[2].map: ${j.list}: map needs an array, got object` {
		t.Errorf("map over an object: %v", err)
	}
	outputs["j"] = []byte(`{"list": [` + strings.Repeat("0,", MaxItems) + `0]}`)
	if _, err := p.Step("ref").Items(outputs); err == nil || err.Error() != `step "ref": $.steps[2].map: ${j.list}: map: more than 100000 elements` {
		t.Errorf("too many elements: %v", err)
	}

	if got, err := p.Step("ref").Join([][]byte{[]byte(` {"a": 1} `), []byte(`2`)}); err != nil || string(got) != `[{"a": 1},2]` {
		t.Errorf("Join = %s, %v", got, err)
	}
	if got, err := p.Step("ref").Join(nil); err != nil || string(got) != `[]` {
		t.Errorf("Join() = %s, %v", got, err)
	}
	if _, err := p.Step("ref").Join([][]byte{[]byte(`{`)}); err == nil || err.Error() != `step "ref": $.steps[2]: the output of element 0 is not valid JSON: unexpected end, want a string key at byte 1` {
		t.Errorf("Join of bad JSON: %v", err)
	}
	if got, err := p.Step("bytes").Join([][]byte{[]byte("a\"b"), nil}); err != nil || string(got) != `["a\"b",""]` {
		t.Errorf("Join of bytes = %s, %v", got, err)
	}
	if _, err := p.Step("bytes").Join([][]byte{[]byte("ok"), {0xff}}); err == nil || err.Error() != `step "bytes": $.steps[3]: the output of element 1 is bytes that are not valid UTF-8, so it cannot be placed in the step's JSON array` {
		t.Errorf("Join of bad bytes: %v", err)
	}
	if s := p.Step("bytes"); s.Output != "bytes" {
		t.Errorf("map step of a bytes function: output %s", s.Output)
	}
}

func TestPlan_DefaultOutputIsEverySink(t *testing.T) {
	p := mustCompile(t, `{"version": 1, "steps": [
		{"id": "z", "module": "math", "function": "add"},
		{"id": "a", "module": "math", "function": "add", "args": "${c}"},
		{"id": "c", "module": "math", "function": "add"},
		{"id": "b", "module": "blob", "function": "fetch"}
	]}`)
	if got := p.Output.String(); got != `{"a":"${a}","b":"${b}","z":"${z}"}` {
		t.Errorf("default output %s", got)
	}
	got, err := p.Output.Render(map[string][]byte{"a": []byte(`1`), "b": []byte(`hi`), "c": []byte(`3`), "z": []byte(`[]`)}, nil, 0)
	if err != nil || string(got) != `{"a":1,"b":"hi","z":[]}` {
		t.Errorf("output = %s, %v", got, err)
	}
	_, err = p.Output.Render(map[string][]byte{"a": []byte(`1`)}, nil, 0)
	if err == nil || err.Error() != `workflow output: $.output.b: ${b}: step "b" has no output yet` {
		t.Errorf("output error: %v", err)
	}
}
